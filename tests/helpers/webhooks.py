"""Webhook deliveries as Intuit sends them: CloudEvents arrays, signed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid

from tests.conftest import REALM_ID, VERIFIER_TOKEN


def sign(body: bytes, token: str = VERIFIER_TOKEN) -> str:
    return base64.b64encode(hmac.new(token.encode(), body, hashlib.sha256).digest()).decode()


def cloud_events(*events: tuple[str, str, str], realm: str = REALM_ID) -> bytes:
    """(entity, id, verb) -> a CloudEvents array like Intuit's."""
    return json.dumps(
        [
            {
                "specversion": "1.0",
                "id": str(uuid.uuid4()),
                "source": "intuit.test",
                "type": f"qbo.{entity.lower()}.{verb}.v1",
                "datacontenttype": "application/json",
                "time": f"2026-11-25T10:00:{i:02d}.123456789Z",
                "intuitentityid": entity_id,
                "intuitaccountid": realm,
                "data": {},
            }
            for i, (entity, entity_id, verb) in enumerate(events)
        ]
    ).encode()
