"""Xero's official SDK (``xero-python``), pointed at the emulator and used unchanged.

The SDK does not do the authorization-code exchange itself (its README hands that to an
OAuth library); ``requests-oauthlib`` does it here, as it would in a web app.  The SDK's
API classes take the emulator as ``base_url``; its token endpoints are class attributes of
``TokenApi`` (``refresh_token_url``, ``revoke_token_url``), the one place to point them.
Everything is synchronous, so it runs in a worker thread while the emulator serves.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from requests_oauthlib import OAuth2Session  # type: ignore[import-untyped]
from xero_python.accounting import AccountingApi  # type: ignore[import-untyped]
from xero_python.api_client import ApiClient  # type: ignore[import-untyped]
from xero_python.api_client.configuration import Configuration  # type: ignore[import-untyped]
from xero_python.api_client.oauth2 import OAuth2Token, TokenApi  # type: ignore[import-untyped]
from xero_python.exceptions import NotFoundException  # type: ignore[import-untyped]
from xero_python.identity import IdentityApi  # type: ignore[import-untyped]

from tests.emulators.xero.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    READ_SCOPES,
    REDIRECT_URI,
    Emulator,
    claims,
)

TODAY = date(2026, 3, 2)
T = TypeVar("T")


@pytest.fixture
def sdks() -> Iterator[Callable[[Emulator, dict[str, Any]], Sdk]]:
    """Makes SDK clients and closes their connection pools afterwards."""
    made: list[Sdk] = []

    def make(emulator: Emulator, token: dict[str, Any]) -> Sdk:
        made.append(Sdk(emulator, token))
        return made[-1]

    yield make
    for sdk in made:
        sdk.close()
    # TokenApi reads refresh and revoke responses with _preload_content=False and never
    # releases them, so their sockets are only closed when collected: collect them here,
    # where that ResourceWarning is expected, rather than in some later test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture(autouse=True)
def _sdk_points_at_the_emulator(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TokenApi, "refresh_token_url", f"{emulator.base}/connect/token")
    monkeypatch.setattr(TokenApi, "revoke_token_url", f"{emulator.base}/connect/revocation")
    # requests-oauthlib refuses plain http:// without this.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def _login(emulator: Emulator, tenants: list[str]) -> dict[str, Any]:
    """The browser part (headless consent) and the code exchange by requests-oauthlib."""
    session = OAuth2Session(CLIENT_ID, redirect_uri=REDIRECT_URI, scope=READ_SCOPES.split())
    url, state = session.authorization_url(f"{emulator.base}/identity/connect/authorize")
    consent = f"{url}&emulator_decision=allow&emulator_tenants={','.join(tenants)}"
    with requests.get(consent, allow_redirects=False, timeout=10) as resp:
        assert resp.status_code == 302
        callback = resp.headers["Location"]
    assert parse_qs(urlsplit(callback).query)["state"] == [state]
    with session:
        token: dict[str, Any] = session.fetch_token(
            f"{emulator.base}/connect/token",
            authorization_response=callback,
            client_secret=CLIENT_SECRET,
        )
    return token


class Sdk:
    """An ApiClient whose token lives in a dict, as the SDK's README wires it."""

    def __init__(self, emulator: Emulator, token: dict[str, Any]) -> None:
        self.store: dict[str, Any] = {"token": token}
        configuration = Configuration()
        configuration.oauth2_token = OAuth2Token(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
        self.client = ApiClient(
            configuration,
            pool_threads=1,
            oauth2_token_getter=lambda: self.store["token"],
            oauth2_token_saver=self._save,
        )
        self.identity = IdentityApi(self.client, base_url=emulator.base)
        self.accounting = AccountingApi(self.client, base_url=f"{emulator.base}/api.xro/2.0")

    def _save(self, token: dict[str, Any]) -> None:
        self.store["token"] = token

    def close(self) -> None:
        self.client.rest_client.pool_manager.clear()


async def _in_thread(work: Callable[[], T]) -> T:
    return await asyncio.to_thread(work)


async def _books(emulator: Emulator) -> tuple[str, str, dict[str, str]]:
    tenant = await emulator.organisation(name="Conformance Ltd", today=TODAY.isoformat())
    other = await emulator.organisation(name="Other Ltd", today=TODAY.isoformat())
    base = f"/organisations/{tenant}"
    contact = (await emulator.control("POST", f"{base}/contacts", {"name": "Ada Lopez"}))[
        "Contacts"
    ][0]["ContactID"]
    ids = {"contact": contact}
    for n, (amount, due) in enumerate(
        (("100.00", "2026-01-31"), ("250.50", "2026-02-15"), ("75.25", "2026-04-01"))
    ):
        created = await emulator.control(
            "POST",
            f"{base}/invoices",
            {"contact_id": contact, "amount": amount, "date": "2026-01-01", "due_date": due},
        )
        ids[f"invoice{n}"] = created["Invoices"][0]["InvoiceID"]
    return tenant, other, ids


async def test_oauth_flow_connections_refresh_and_revoke(
    emulator: Emulator, sdks: Callable[[Emulator, dict[str, Any]], Sdk]
) -> None:
    tenant, other, _ = await _books(emulator)
    token = await _in_thread(lambda: _login(emulator, [tenant, other]))
    assert token["expires_in"] == 1800
    sdk = sdks(emulator, token)

    connections = await _in_thread(lambda: sdk.identity.get_connections())
    assert {c.tenant_id for c in connections} == {tenant, other}
    event = claims(token["access_token"])["authentication_event_id"]
    assert {str(c.auth_event_id) for c in connections} == {event}
    chosen = await _in_thread(lambda: sdk.identity.get_connections(auth_event_id=event))
    assert len(chosen) == 2

    first_refresh = token["refresh_token"]
    refreshed = await _in_thread(lambda: sdk.client.refresh_oauth2_token())
    assert refreshed["refresh_token"] != first_refresh
    assert sdk.store["token"]["access_token"] != token["access_token"]
    assert emulator.state.oauth.token_calls["refresh_token"] == 1
    # The refreshed token still reaches both organisations.
    orgs = await _in_thread(lambda: sdk.accounting.get_organisations(other))
    assert orgs.organisations[0].name == "Other Ltd"

    gone = next(c for c in connections if c.tenant_id == other)
    await _in_thread(lambda: sdk.identity.delete_connection(gone.id))
    left = await _in_thread(lambda: sdk.identity.get_connections())
    assert [c.tenant_id for c in left] == [tenant]

    await _in_thread(lambda: sdk.client.revoke_oauth2_token())
    assert sdk.store["token"]["access_token"] is None
    assert emulator.state.oauth.connections == {}


async def test_the_sdk_refreshes_an_expired_access_token_by_itself(
    emulator: Emulator, sdks: Callable[[Emulator, dict[str, Any]], Sdk]
) -> None:
    tenant, _, _ = await _books(emulator)
    token = await _in_thread(lambda: _login(emulator, [tenant]))
    token["expires_at"] = datetime.now(UTC).timestamp() - 1  # as if 30 minutes had passed
    sdk = sdks(emulator, token)
    orgs = await _in_thread(lambda: sdk.accounting.get_organisations(tenant))
    assert orgs.organisations[0].timezone.value == "NEWZEALANDSTANDARDTIME"
    assert emulator.state.oauth.token_calls["refresh_token"] == 1
    assert sdk.store["token"]["refresh_token"] != token["refresh_token"]


async def test_invoices_with_if_modified_since_paging_and_where(
    emulator: Emulator, sdks: Callable[[Emulator, dict[str, Any]], Sdk]
) -> None:
    tenant, _, ids = await _books(emulator)
    sdk = sdks(emulator, await _in_thread(lambda: _login(emulator, [tenant])))

    page1 = await _in_thread(
        lambda: sdk.accounting.get_invoices(tenant, page=1, page_size=2, order="DueDate ASC")
    )
    assert page1.pagination.page_count == 2
    assert page1.pagination.item_count == 3
    assert [i.invoice_id for i in page1.invoices] == [ids["invoice0"], ids["invoice1"]]
    first = page1.invoices[0]
    assert first.due_date == date(2026, 1, 31)
    assert first.total == 100.0
    assert first.status == "AUTHORISED"
    assert first.updated_date_utc.tzinfo is not None
    assert first.line_items[0].line_amount == 100.0
    page2 = await _in_thread(lambda: sdk.accounting.get_invoices(tenant, page=2, page_size=2))
    assert len(page2.invoices) == 1

    overdue = await _in_thread(
        lambda: sdk.accounting.get_invoices(
            tenant,
            where='Type=="ACCREC" AND AmountDue>0 AND DueDate<DateTime(2026,03,02)',
            statuses=["AUTHORISED"],
            page=1,
        )
    )
    assert {i.invoice_id for i in overdue.invoices} == {ids["invoice0"], ids["invoice1"]}

    org = emulator.state.organisations[tenant]
    await emulator.advance(5)
    since = datetime.fromtimestamp(org.now(), UTC).replace(microsecond=0, tzinfo=None)
    await emulator.advance(2)
    await emulator.control(
        "POST",
        f"/organisations/{tenant}/payments",
        {"invoice_id": ids["invoice1"], "amount": "50.50"},
    )
    changed = await _in_thread(
        lambda: sdk.accounting.get_invoices(tenant, if_modified_since=since, page=1)
    )
    assert [i.invoice_id for i in changed.invoices] == [ids["invoice1"]]
    part_paid = changed.invoices[0]
    assert (part_paid.amount_paid, part_paid.amount_due) == (50.5, 200.0)
    assert part_paid.status == "AUTHORISED"

    by_ids = await _in_thread(
        lambda: sdk.accounting.get_invoices(tenant, i_ds=[ids["invoice2"], ids["invoice0"]])
    )
    assert {i.invoice_id for i in by_ids.invoices} == {ids["invoice0"], ids["invoice2"]}


async def test_payments_including_a_deleted_one(
    emulator: Emulator, sdks: Callable[[Emulator, dict[str, Any]], Sdk]
) -> None:
    tenant, _, ids = await _books(emulator)
    sdk = sdks(emulator, await _in_thread(lambda: _login(emulator, [tenant])))
    paid = await emulator.control(
        "POST", f"/organisations/{tenant}/payments", {"invoice_id": ids["invoice0"]}
    )
    payment_id = paid["Payments"][0]["PaymentID"]
    invoice = await _in_thread(lambda: sdk.accounting.get_invoice(tenant, ids["invoice0"]))
    assert invoice.invoices[0].status == "PAID"
    assert invoice.invoices[0].fully_paid_on_date == TODAY
    await emulator.advance(2)
    since = datetime.fromtimestamp(emulator.state.organisations[tenant].now(), UTC).replace(
        microsecond=0, tzinfo=None
    )
    await emulator.advance(1)
    await emulator.control("DELETE", f"/organisations/{tenant}/payments/{payment_id}")
    payments = await _in_thread(
        lambda: sdk.accounting.get_payments(tenant, if_modified_since=since)
    )
    assert [(str(p.payment_id), p.status) for p in payments.payments] == [(payment_id, "DELETED")]
    assert payments.payments[0].payment_type == "ACCRECPAYMENT"
    assert payments.payments[0].invoice.invoice_id == ids["invoice0"]
    again = await _in_thread(lambda: sdk.accounting.get_invoice(tenant, ids["invoice0"]))
    assert (again.invoices[0].status, again.invoices[0].amount_due) == ("AUTHORISED", 100.0)


async def test_credit_notes_and_their_allocations(
    emulator: Emulator, sdks: Callable[[Emulator, dict[str, Any]], Sdk]
) -> None:
    tenant, _, ids = await _books(emulator)
    sdk = sdks(emulator, await _in_thread(lambda: _login(emulator, [tenant])))
    note = (
        await emulator.control(
            "POST",
            f"/organisations/{tenant}/credit-notes",
            {"contact_id": ids["contact"], "amount": "40.00"},
        )
    )["CreditNotes"][0]
    await emulator.control(
        "POST",
        f"/organisations/{tenant}/credit-notes/{note['CreditNoteID']}/allocations",
        {"invoice_id": ids["invoice0"], "amount": "30.00"},
    )
    notes = await _in_thread(lambda: sdk.accounting.get_credit_notes(tenant, page=1))
    credit = notes.credit_notes[0]
    assert credit.type == "ACCRECCREDIT"
    assert (credit.remaining_credit, credit.allocations[0].amount) == (10.0, 30.0)
    assert credit.allocations[0].invoice.invoice_id == ids["invoice0"]
    invoice = await _in_thread(lambda: sdk.accounting.get_invoice(tenant, ids["invoice0"]))
    assert invoice.invoices[0].amount_credited == 30.0
    assert invoice.invoices[0].credit_notes[0].credit_note_id == note["CreditNoteID"]


async def test_contacts_and_errors_through_the_sdk(
    emulator: Emulator, sdks: Callable[[Emulator, dict[str, Any]], Sdk]
) -> None:
    tenant, _, ids = await _books(emulator)
    sdk = sdks(emulator, await _in_thread(lambda: _login(emulator, [tenant])))
    contacts = await _in_thread(lambda: sdk.accounting.get_contacts(tenant, i_ds=[ids["contact"]]))
    ada = contacts.contacts[0]
    assert ada.name == "Ada Lopez"
    assert ada.contact_status == "ACTIVE"
    assert ada.balances.accounts_receivable.overdue == 350.5
    with pytest.raises(NotFoundException):
        await _in_thread(
            lambda: sdk.accounting.get_invoice(tenant, "9b6a3c5e-0000-4000-8000-000000000000")
        )
    # A 429 with Retry-After: urllib3's default retry (under the SDK) waits and asks again,
    # so the call succeeds after the pause without the caller seeing the 429.
    await emulator.control("PUT", "/faults", {"throttle_count": 1, "retry_after": 1})
    again = await _in_thread(lambda: sdk.accounting.get_contacts(tenant))
    assert [c.name for c in again.contacts] == ["Ada Lopez"]
    assert emulator.state.faults.injected == {"throttle": 1}
    assert emulator.state.throttled["minute"] == 1
