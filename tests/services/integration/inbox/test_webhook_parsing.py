"""Signature verification (Intuit's published vectors) and both payload formats."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from services.integration.providers.qbo.webhooks import (
    InvalidSignature,
    MalformedWebhook,
    parse_payload,
    parse_time,
    verify_signature,
)

V1_TOKEN = "b5771f19b12ddb4bcdb9f08bdc50bc63878a"
V1_BODY = (
    b'{"eventNotifications":[{"realmId":"1185883450","dataChangeEvent":{"entities":'
    b'[{"name":"Customer","id":"1","operation":"Create","lastUpdated":"2015-10-05T14:42:19-0700"}]}}]}'
)
V4_BODY = (
    b'[{"specversion":"1.0","id":"d1a3aedd-9670-41bf-a4f9-c148a1cc4e03","source":'
    b'"intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=","type":"qbo.class.created.v1",'
    b'"time":"2025-10-07T19:59:07.034359333Z","intuitentityid":"1234","intuitaccountid":"310687"}]'
)


@pytest.mark.parametrize(
    ("token", "body", "signature"),
    [
        (V1_TOKEN, V1_BODY, "JC2GUwciPmRBwEO7WvrRmKqu9tGOKL8FFallocTFi8Q="),
        ("verify_me", b'{"stuff":"5"}', "nfPLN16u3vMvv08ghDs+dOkLuirEVDy5wAeG/lmM2OA="),
        ("12345", b"abcd", "gfTuE5fLxnstOq8ln4LNWZfn24cg8FVB6PBv455lfzg="),
        (V1_TOKEN, V4_BODY, "1lzsg+Xzy5KEwYeo0OfpUWUYFyV8YgWyrakbLir96Wk="),
    ],
)
def test_published_vectors_verify(token: str, body: bytes, signature: str) -> None:
    assert len(V1_BODY) == 173
    assert len(V4_BODY) == 251
    verify_signature(body, signature, [token])
    verify_signature(body, signature, ["an-old-token", token])  # rotation: previous first


@pytest.mark.parametrize(
    ("token", "body", "signature"),
    [
        (V1_TOKEN, V1_BODY, "1234"),
        ("verify_me", b"", "nfPLN16u3vMvv08ghDs+dOkLuirEVDy5wAeG/lmM2OA="),
        (V1_TOKEN, V1_BODY, ""),
        (V1_TOKEN, V1_BODY + b" ", "JC2GUwciPmRBwEO7WvrRmKqu9tGOKL8FFallocTFi8Q="),
        ("", V1_BODY, "JC2GUwciPmRBwEO7WvrRmKqu9tGOKL8FFallocTFi8Q="),
        (V1_TOKEN, V1_BODY, "not base64 at all!"),
    ],
)
def test_bad_signatures_are_refused(token: str, body: bytes, signature: str) -> None:
    with pytest.raises(InvalidSignature):
        verify_signature(body, signature, [token])


def test_legacy_format() -> None:
    (event,) = parse_payload(V1_BODY)
    assert (event.realm_id, event.entity, event.entity_id, event.operation) == (
        "1185883450",
        "Customer",
        "1",
        "Create",
    )
    assert event.occurred_at == datetime(2015, 10, 5, 21, 42, 19, tzinfo=UTC)
    assert event.event_id.startswith("legacy-")
    assert parse_payload(V1_BODY)[0].event_id == event.event_id  # stable across retries


def test_cloudevents_format_with_mixed_realms() -> None:
    body = json.dumps(
        [
            {
                "specversion": "1.0",
                "id": "e1",
                "type": "qbo.payment.created.v1",
                "time": "2025-09-10T21:31:25.179851517Z",
                "intuitentityid": "77",
                "intuitaccountid": "111",
            },
            {
                "specversion": "1.0",
                "id": "e2",
                "type": "qbo.invoice.voided.v1",
                "time": "2025-09-10T21:31:26Z",
                "intuitentityid": "5",
                "intuitaccountid": "222",
            },
        ]
    ).encode()
    first, second = parse_payload(body)
    assert (first.realm_id, first.entity, first.operation) == ("111", "Payment", "Create")
    assert first.occurred_at.microsecond == 179851
    assert (second.realm_id, second.entity, second.operation) == ("222", "Invoice", "Void")
    assert first.relevant
    assert second.relevant


def test_cloudevents_of_other_entities_are_parsed_but_not_relevant() -> None:
    (event,) = parse_payload(V4_BODY)
    assert event.entity == "Class"
    assert not event.relevant


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"{}",
        b"[1, 2]",
        b'{"eventNotifications": "x"}',
        b'[{"id": "x", "type": "qbo.invoice.created.v1"}]',
        b'[{"id": "x", "type": "other", "time": "2025-01-01T00:00:00Z",'
        b' "intuitentityid": "1", "intuitaccountid": "2"}]',
        b'[{"id": "x", "type": "qbo.invoice.created.v1", "time": "yesterday",'
        b' "intuitentityid": "1", "intuitaccountid": "2"}]',
        b"\xff\xfe",
    ],
)
def test_malformed_payloads_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedWebhook):
        parse_payload(body)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2015-10-05T14:42:19-0700", datetime(2015, 10, 5, 21, 42, 19, tzinfo=UTC)),
        ("2025-09-08T20:52:31.657Z", datetime(2025, 9, 8, 20, 52, 31, 657000, tzinfo=UTC)),
        ("2025-10-07T19:59:07.034359333Z", datetime(2025, 10, 7, 19, 59, 7, 34359, tzinfo=UTC)),
        ("2025-10-07T19:59:07+02:00", datetime(2025, 10, 7, 17, 59, 7, tzinfo=UTC)),
    ],
)
def test_intuit_time_formats(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


def test_signature_of_our_own_emulator_payload_round_trips() -> None:
    body = b'[{"specversion":"1.0"}]'
    signature = base64.b64encode(hmac.new(b"tok", body, hashlib.sha256).digest()).decode()
    verify_signature(body, signature, ["tok"])
