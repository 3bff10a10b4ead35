"""Real clients nobody here wrote, pointed at the emulator and used unchanged.

``intuit-oauth`` (Intuit's own OAuth client; 1.2.6, the version python-quickbooks 0.9.12
pins) reads the emulator's discovery document; ``python-quickbooks`` gets the emulator's
``/v3`` as its API base.  Both are synchronous, so they run in a worker thread.
"""

from __future__ import annotations

import asyncio
from datetime import date
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from intuitlib.client import AuthClient  # type: ignore[import-untyped]
from intuitlib.enums import Scopes  # type: ignore[import-untyped]
from intuitlib.exceptions import AuthClientError  # type: ignore[import-untyped]
from quickbooks import QuickBooks  # type: ignore[import-untyped]
from quickbooks.exceptions import ObjectNotFoundException  # type: ignore[import-untyped]
from quickbooks.objects.customer import Customer  # type: ignore[import-untyped]
from quickbooks.objects.invoice import Invoice  # type: ignore[import-untyped]

from tests.emulator.conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, Emulator

TODAY = date(2026, 3, 2)


def _consent(auth: AuthClient, realm: str) -> dict[str, list[str]]:
    """What the user's browser would do: open the URL, let the emulator redirect."""
    url = auth.get_authorization_url([Scopes.ACCOUNTING])
    with requests.get(
        f"{url}&emulator_decision=allow&emulator_realm={realm}", allow_redirects=False, timeout=10
    ) as resp:
        assert resp.status_code == 302
        return parse_qs(urlsplit(resp.headers["Location"]).query)


async def test_intuit_oauth_exchange_refresh_revoke(emulator: Emulator) -> None:
    realm = await emulator.company()
    discovery = f"{emulator.base}/.well-known/openid_configuration"

    def flow() -> None:
        with AuthClient(CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, environment=discovery) as auth:
            assert auth.token_endpoint == f"{emulator.base}/oauth2/v1/tokens/bearer"
            callback = _consent(auth, realm)
            assert callback["state"] == [auth.state_token]
            auth.get_bearer_token(callback["code"][0], realm_id=callback["realmId"][0])
            assert auth.realm_id == realm
            assert auth.access_token
            assert auth.expires_in == 3600
            assert auth.x_refresh_token_expires_in == 8_726_400
            first = auth.refresh_token

            auth.refresh()
            assert auth.refresh_token != first
            with pytest.raises(AuthClientError) as stale:
                auth.refresh(refresh_token=first)
            assert stale.value.status_code == 400
            assert b"invalid_grant" in stale.value.content
            assert stale.value.intuit_tid

            assert auth.revoke() is True
            with pytest.raises(AuthClientError) as revoked:
                auth.refresh()
            assert revoked.value.status_code == 400

    await asyncio.to_thread(flow)
    assert emulator.state.oauth.token_calls["refresh_token"] == 3
    assert emulator.state.oauth.token_calls["authorization_code"] == 1


async def test_python_quickbooks_queries_reads_and_pages(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    realm = await emulator.company(
        customers=30, invoices=250, overdue_fraction=0.2, seed=5, today=TODAY.isoformat()
    )
    tokens = await emulator.connect(realm)
    discovery = f"{emulator.base}/.well-known/openid_configuration"

    def flow() -> None:
        with AuthClient(
            CLIENT_ID,
            CLIENT_SECRET,
            REDIRECT_URI,
            environment=discovery,
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            realm_id=realm,
        ) as auth:
            qb = QuickBooks(
                auth_client=auth,
                refresh_token=tokens.refresh_token,
                company_id=realm,
                minorversion=75,
            )
            qb.api_url_v3 = f"{emulator.base}/v3"

            overdue = Invoice.where(
                f"Balance > '0' AND DueDate < '{TODAY}'",
                order_by="DueDate",
                max_results=1000,
                qb=qb,
            )
            assert len(overdue) == 50
            assert all(inv.Balance > 0 and inv.DueDate < TODAY.isoformat() for inv in overdue)
            assert [i.DueDate for i in overdue] == sorted(i.DueDate for i in overdue)

            customer_id = overdue[0].CustomerRef.value
            customer = Customer.get(customer_id, qb=qb)
            assert customer.Id == customer_id
            assert customer.DisplayName == overdue[0].CustomerRef.name
            assert customer.PrimaryEmailAddr.Address

            seen: list[str] = []
            start = 1
            while True:
                page = Invoice.all(start_position=start, max_results=100, qb=qb)
                seen += [inv.Id for inv in page]
                if len(page) < 100:
                    break
                start += 100
            assert len(seen) == len(set(seen)) == 250
            assert Invoice.count(qb=qb) == 250
            assert Invoice.count("Balance > '0'", qb=qb) == 250

            mine = Invoice.filter(CustomerRef=customer_id, max_results=1000, qb=qb)
            assert mine
            assert {inv.CustomerRef.value for inv in mine} == {customer_id}

            with pytest.raises(ObjectNotFoundException):
                Invoice.get(999_999, qb=qb)

    await asyncio.to_thread(flow)
    assert emulator.state.api_requests[realm] >= 6
