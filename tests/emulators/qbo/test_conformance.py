"""Real clients nobody here wrote, pointed at the emulator and used unchanged.

``intuit-oauth`` (Intuit's own OAuth client; 1.2.6, the version python-quickbooks 0.9.12
pins) reads the emulator's discovery document; ``python-quickbooks`` gets the emulator's
``/v3`` as its API base.  Both are synchronous, so they run in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from intuitlib.client import AuthClient  # type: ignore[import-untyped]
from intuitlib.enums import Scopes  # type: ignore[import-untyped]
from intuitlib.exceptions import AuthClientError  # type: ignore[import-untyped]
from quickbooks import QuickBooks  # type: ignore[import-untyped]
from quickbooks.cdc import change_data_capture  # type: ignore[import-untyped]
from quickbooks.exceptions import (  # type: ignore[import-untyped]
    ObjectNotFoundException,
    SevereException,
    ValidationException,
)
from quickbooks.objects.account import Account  # type: ignore[import-untyped]
from quickbooks.objects.customer import Customer  # type: ignore[import-untyped]
from quickbooks.objects.invoice import Invoice  # type: ignore[import-untyped]
from quickbooks.objects.item import Item  # type: ignore[import-untyped]

from tests.emulators.qbo.conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, Emulator, Tokens

TODAY = date(2026, 3, 2)
T = TypeVar("T")


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


@contextmanager
def _quickbooks(emulator: Emulator, tokens: Tokens) -> Iterator[QuickBooks]:
    """python-quickbooks as its users set it up, with the emulator as its API base."""
    discovery = f"{emulator.base}/.well-known/openid_configuration"
    with AuthClient(
        CLIENT_ID,
        CLIENT_SECRET,
        REDIRECT_URI,
        environment=discovery,
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        realm_id=tokens.realm_id,
    ) as auth:
        qb = QuickBooks(
            auth_client=auth,
            refresh_token=tokens.refresh_token,
            company_id=tokens.realm_id,
            minorversion=75,
        )
        qb.api_url_v3 = f"{emulator.base}/v3"
        yield qb


async def _with_quickbooks(
    emulator: Emulator, tokens: Tokens, flow: Callable[[QuickBooks], T]
) -> T:
    def run() -> T:
        with _quickbooks(emulator, tokens) as qb:
            return flow(qb)

    return await asyncio.to_thread(run)


async def test_python_quickbooks_queries_reads_and_pages(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    realm = await emulator.company(
        customers=30, invoices=250, overdue_fraction=0.2, seed=5, today=TODAY.isoformat()
    )
    tokens = await emulator.connect(realm)

    def flow(qb: QuickBooks) -> None:
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

    await _with_quickbooks(emulator, tokens, flow)
    assert emulator.state.api_requests[realm] >= 6


async def test_python_quickbooks_sees_inactive_customers_only_when_asked(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Intuit: ``SELECT * FROM Customer`` is the active customers; ``Active IN (true,
    false)`` adds the inactive ("deleted") ones; a read by id and CDC see them too."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    realm = await emulator.company(customers=12, invoices=40, seed=3, today=TODAY.isoformat())
    tokens = await emulator.connect(realm)
    _, info, _ = await emulator.api(tokens, f"companyinfo/{realm}")
    created = await emulator.control(
        "POST",
        f"/companies/{realm}/customers",
        {"display_name": "Gone Gadgets", "email": "ap@gone.example.org"},
    )
    gone_id = created["Customer"]["Id"]
    await emulator.control("DELETE", f"/companies/{realm}/customers/{gone_id}")

    def flow(qb: QuickBooks) -> None:
        active = Customer.all(max_results=1000, qb=qb)
        assert len(active) == 12
        assert gone_id not in {c.Id for c in active}
        assert Customer.count(qb=qb) == 12
        assert Customer.filter(Id=gone_id, qb=qb) == []

        everyone = Customer.where("Active IN (true, false)", max_results=1000, qb=qb)
        assert len(everyone) == 13
        assert Customer.count("Active IN (true, false)", qb=qb) == 13
        inactive = Customer.filter(Active=False, qb=qb)
        assert [(c.Id, c.Active, c.DisplayName) for c in inactive] == [
            (gone_id, False, "Gone Gadgets (deleted)")
        ]
        by_id = Customer.choose([gone_id], qb=qb)
        assert by_id == []
        assert Customer.where(f"Id = '{gone_id}' AND Active = false", qb=qb)[0].Id == gone_id

        read = Customer.get(gone_id, qb=qb)
        assert (read.Active, read.PrimaryEmailAddr.Address) == (False, "ap@gone.example.org")

        changes = change_data_capture([Customer, Invoice], info["time"], qb=qb)
        changed = changes.Customer._object_list
        assert [(c.Id, c.Active) for c in changed] == [(gone_id, False)]

    await _with_quickbooks(emulator, tokens, flow)


async def test_python_quickbooks_on_entities_the_emulator_keeps_no_data_for(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QBO entities without data here answer as a company that has none of them: every
    query (python-quickbooks' ``SELECT *, Sku FROM Item`` too) is empty, counts are 0, any
    property may be filtered on, a read by id is 610 Object Not Found."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    realm = await emulator.company(customers=3, invoices=5, seed=3, today=TODAY.isoformat())
    tokens = await emulator.connect(realm)

    def flow(qb: QuickBooks) -> None:
        assert Item.all(qb=qb) == []
        assert Item.count(qb=qb) == 0
        assert Item.filter(Name="Rock Fountain", Type="Inventory", qb=qb) == []
        assert Item.where("Sku LIKE 'SKU%'", order_by="Name", qb=qb) == []
        assert Account.filter(AccountType="Bank", qb=qb) == []
        assert Account.count("Active IN (true, false)", qb=qb) == 0
        with pytest.raises(ObjectNotFoundException) as missing:
            Item.get(1, qb=qb)
        assert missing.value.error_code == 610
        # The projection python-quickbooks writes for Item works on any entity.
        assert len(Customer.query("SELECT *, Sku FROM Customer", qb=qb)) == 3

    await _with_quickbooks(emulator, tokens, flow)


async def test_python_quickbooks_gets_intuits_errors(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One answer per mistake: an unknown entity is 4001 "Metadata not found for Entity",
    a statement that does not parse is 4000 "Error parsing query", an unknown path is 404."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    realm = await emulator.company(customers=3, invoices=5, seed=3, today=TODAY.isoformat())
    tokens = await emulator.connect(realm)

    def flow(qb: QuickBooks) -> None:
        with pytest.raises(ValidationException) as unknown:
            qb.query("SELECT * FROM Gadget")
        assert unknown.value.error_code == 4001
        assert unknown.value.message == "Invalid query"
        assert unknown.value.detail == "QueryValidationError: Metadata not found for Entity: Gadget"
        with pytest.raises(ValidationException) as lower_case:
            qb.query("SELECT COUNT(*) FROM customer")
        assert lower_case.value.error_code == 4001
        with pytest.raises(ValidationException) as cdc_unknown:
            qb.change_data_capture("Customer,Gadget", "2026-03-01T00:00:00-08:00")
        assert cdc_unknown.value.detail == unknown.value.detail

        with pytest.raises(ValidationException) as unparsed:
            Customer.where("DisplayName = 'A' OR DisplayName = 'B'", qb=qb)
        assert unparsed.value.error_code == 4000
        assert unparsed.value.message == "Error parsing query"
        assert unparsed.value.detail.startswith("QueryParserError")

        with pytest.raises(SevereException) as no_such_path:
            qb.get_single_object("Gadget", 1)
        assert no_such_path.value.error_code == 10000
        assert "Could not find resource" in no_such_path.value.detail

    await _with_quickbooks(emulator, tokens, flow)
    for method, path in (
        ("GET", "gadget/1"),
        ("GET", "invoice"),
        ("POST", "gadget"),
        ("GET", "a/b/c"),
    ):
        status, body, _ = await emulator.api(tokens, path, method=method, data="{}")
        assert status == 404, (method, path)
        assert body["Fault"]["type"] == "SystemFault"
    # Still behind the gate: without a token an unknown path is a 401 like any other.
    async with emulator.http.get(f"{emulator.base}/v3/company/{realm}/gadget/1") as resp:
        assert resp.status == 401
