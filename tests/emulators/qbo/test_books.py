"""Bookkeeper actions and the balances QBO would show afterwards."""

from __future__ import annotations

from typing import Any

import pytest

from tests.emulators.qbo.conftest import Emulator, Tokens


class Books:
    def __init__(self, emulator: Emulator, realm: str, tokens: Tokens) -> None:
        self.emulator = emulator
        self.realm = realm
        self.tokens = tokens

    async def act(
        self, method: str, path: str, body: dict[str, Any] | None = None, expect: int = 200
    ) -> Any:
        return await self.emulator.control(method, f"/companies/{self.realm}{path}", body, expect)

    async def read(self, entity: str, entity_id: str) -> dict[str, Any]:
        status, body, _ = await self.emulator.api(self.tokens, f"{entity.lower()}/{entity_id}")
        assert status == 200, body
        result: dict[str, Any] = body[entity]
        return result

    async def customer(self, name: str = "Rock Fountain Ltd") -> str:
        created = await self.act(
            "POST", "/customers", {"display_name": name, "email": "ap@example.com"}
        )
        customer_id: str = created["Customer"]["Id"]
        return customer_id

    async def invoice(self, customer_id: str, *amounts: str) -> str:
        lines = [{"amount": a, "description": f"line {n}"} for n, a in enumerate(amounts)]
        created = await self.act("POST", "/invoices", {"customer_id": customer_id, "lines": lines})
        invoice_id: str = created["Invoice"]["Id"]
        return invoice_id


@pytest.fixture
async def books(emulator: Emulator) -> Books:
    realm = await emulator.company(name="Books Co")
    return Books(emulator, realm, await emulator.connect(realm))


async def test_partial_payment_reduces_balance_and_links(books: Books) -> None:
    cust = await books.customer()
    inv = await books.invoice(cust, "275.00", "87.07")
    before = await books.read("Invoice", inv)
    assert (before["TotalAmt"], before["Balance"], before["LinkedTxn"]) == (362.07, 362.07, [])
    paid = await books.act(
        "POST", "/payments", {"customer_id": cust, "amount": "100.00",
                              "lines": [{"invoice_id": inv, "amount": "100.00"}]}
    )  # fmt: skip
    payment = paid["Payment"]
    assert (payment["TotalAmt"], payment["UnappliedAmt"]) == (100.0, 0.0)
    assert payment["Line"][0]["LinkedTxn"] == [{"TxnId": inv, "TxnType": "Invoice"}]
    after = await books.read("Invoice", inv)
    assert after["Balance"] == 262.07
    assert after["LinkedTxn"] == [{"TxnId": payment["Id"], "TxnType": "Payment"}]
    assert int(after["SyncToken"]) == int(before["SyncToken"]) + 1
    assert after["MetaData"]["LastUpdatedTime"] >= before["MetaData"]["LastUpdatedTime"]
    customer = await books.read("Customer", cust)
    assert customer["Balance"] == 262.07


async def test_cents_never_drift(books: Books) -> None:
    cust = await books.customer()
    inv = await books.invoice(cust, "0.30")
    for amount in ("0.10", "0.20"):
        await books.act("POST", "/payments", {"lines": [{"invoice_id": inv, "amount": amount}]})
    invoice = await books.read("Invoice", inv)
    assert invoice["Balance"] == 0
    assert len(invoice["LinkedTxn"]) == 2


async def test_payment_over_two_invoices_with_unapplied_rest(books: Books) -> None:
    cust = await books.customer()
    a = await books.invoice(cust, "100.00")
    b = await books.invoice(cust, "50.00")
    paid = await books.act(
        "POST",
        "/payments",
        {"customer_id": cust, "amount": "170.00", "private_note": "check 1001",
         "lines": [{"invoice_id": a, "amount": "100.00"}, {"invoice_id": b, "amount": "50.00"}]},
    )  # fmt: skip
    assert paid["Payment"]["UnappliedAmt"] == 20.0
    assert (await books.read("Invoice", a))["Balance"] == 0
    assert (await books.read("Invoice", b))["Balance"] == 0
    assert (await books.read("Customer", cust))["Balance"] == -20.0


async def test_wholly_unapplied_payment(books: Books) -> None:
    cust = await books.customer()
    inv = await books.invoice(cust, "80.00")
    paid = await books.act("POST", "/payments", {"customer_id": cust, "amount": "80.00"})
    assert paid["Payment"]["Line"] == []
    assert paid["Payment"]["UnappliedAmt"] == paid["Payment"]["TotalAmt"] == 80.0
    invoice = await books.read("Invoice", inv)
    assert invoice["Balance"] == 80.0  # nothing applied: the invoice is still open
    assert (await books.read("Customer", cust))["Balance"] == 0


async def test_overpaying_an_invoice_is_refused(books: Books) -> None:
    cust = await books.customer()
    inv = await books.invoice(cust, "10.00")
    refused = await books.act(
        "POST", "/payments", {"lines": [{"invoice_id": inv, "amount": "10.01"}]}, expect=400
    )
    assert "exceeds" in refused["detail"]
    assert (await books.read("Invoice", inv))["Balance"] == 10.0


async def test_edit_payment_applies_the_difference(books: Books) -> None:
    cust = await books.customer()
    a = await books.invoice(cust, "100.00")
    b = await books.invoice(cust, "60.00")
    pid = (
        await books.act(
            "POST",
            "/payments",
            {"amount": "100.00", "lines": [{"invoice_id": a, "amount": "100.00"}]},
        )
    )["Payment"]["Id"]
    edited = await books.act(
        "PATCH",
        f"/payments/{pid}",
        {"amount": "120.00",
         "lines": [{"invoice_id": a, "amount": "70.00"}, {"invoice_id": b, "amount": "50.00"}]},
    )  # fmt: skip
    assert edited["Payment"]["SyncToken"] == "1"
    assert edited["Payment"]["UnappliedAmt"] == 0
    assert (await books.read("Invoice", a))["Balance"] == 30.0
    invoice_b = await books.read("Invoice", b)
    assert invoice_b["Balance"] == 10.0
    assert invoice_b["LinkedTxn"] == [{"TxnId": pid, "TxnType": "Payment"}]
    # Dropping invoice a's line unlinks it and restores its balance.
    await books.act("PATCH", f"/payments/{pid}", {"lines": [{"invoice_id": b, "amount": "50.00"}]})
    invoice_a = await books.read("Invoice", a)
    assert (invoice_a["Balance"], invoice_a["LinkedTxn"]) == (100.0, [])
    payment = await books.read("Payment", pid)
    assert payment["UnappliedAmt"] == 70.0


async def test_void_payment_zeroes_it_and_reopens_the_invoice(books: Books) -> None:
    cust = await books.customer()
    inv = await books.invoice(cust, "45.50")
    pid = (
        await books.act(
            "POST", "/payments",
            {"private_note": "cash", "lines": [{"invoice_id": inv, "amount": "45.50"}]},
        )
    )["Payment"]["Id"]  # fmt: skip
    assert (await books.read("Invoice", inv))["Balance"] == 0
    voided = (await books.act("POST", f"/payments/{pid}/void"))["Payment"]
    assert (voided["TotalAmt"], voided["UnappliedAmt"], voided["Line"]) == (0, 0, [])
    assert voided["PrivateNote"].startswith("Voided")
    assert voided["PrivateNote"].endswith("cash")
    assert voided["SyncToken"] == "1"
    invoice = await books.read("Invoice", inv)
    assert (invoice["Balance"], invoice["LinkedTxn"]) == (45.5, [])
    # A voided payment stays visible.
    _, body = await books.emulator.query(books.tokens, f"SELECT * FROM Payment WHERE Id = '{pid}'")
    assert body["QueryResponse"]["Payment"][0]["TotalAmt"] == 0


async def test_delete_payment_restores_and_disappears(books: Books) -> None:
    cust = await books.customer()
    inv = await books.invoice(cust, "20.00")
    pid = (
        await books.act("POST", "/payments", {"lines": [{"invoice_id": inv, "amount": "5.00"}]})
    )["Payment"]["Id"]
    deleted = await books.act("DELETE", f"/payments/{pid}")
    assert deleted == {"Payment": {"status": "Deleted", "domain": "QBO", "Id": pid}}
    assert (await books.read("Invoice", inv))["Balance"] == 20.0
    status, body, _ = await books.emulator.api(books.tokens, f"payment/{pid}")
    assert (status, body["Fault"]["Error"][0]["code"]) == (400, "610")


async def test_credit_memo_applied_as_zero_total_payment(books: Books) -> None:
    cust = await books.customer()
    inv = await books.invoice(cust, "100.00")
    memo = (await books.act("POST", "/credit-memos", {"customer_id": cust, "amount": "30.00"}))[
        "CreditMemo"
    ]
    assert (memo["TotalAmt"], memo["Balance"], memo["RemainingCredit"]) == (30.0, 30.0, 30.0)
    assert (await books.read("Customer", cust))["Balance"] == 70.0
    payment = (
        await books.act(
            "POST", f"/credit-memos/{memo['Id']}/apply", {"invoice_id": inv, "amount": "25.00"}
        )
    )["Payment"]
    assert payment["TotalAmt"] == 0
    assert payment["UnappliedAmt"] == 0
    links = [(line["Amount"], line["LinkedTxn"][0]) for line in payment["Line"]]
    assert links == [
        (25.0, {"TxnId": inv, "TxnType": "Invoice"}),
        (25.0, {"TxnId": memo["Id"], "TxnType": "CreditMemo"}),
    ]
    invoice = await books.read("Invoice", inv)
    assert invoice["Balance"] == 75.0
    assert invoice["LinkedTxn"] == [{"TxnId": payment["Id"], "TxnType": "Payment"}]
    memo_now = await books.read("CreditMemo", memo["Id"])
    assert (memo_now["RemainingCredit"], memo_now["SyncToken"]) == (5.0, "1")
    assert (await books.read("Customer", cust))["Balance"] == 70.0
    # More credit than remains is refused.
    await books.act(
        "POST",
        f"/credit-memos/{memo['Id']}/apply",
        {"invoice_id": inv, "amount": "5.01"},
        expect=400,
    )


async def test_void_invoice_unapplies_its_payments(books: Books) -> None:
    cust = await books.customer()
    inv = await books.invoice(cust, "100.00", "20.00")
    pid = (
        await books.act("POST", "/payments", {"lines": [{"invoice_id": inv, "amount": "40.00"}]})
    )["Payment"]["Id"]
    voided = (await books.act("POST", f"/invoices/{inv}/void"))["Invoice"]
    assert (voided["TotalAmt"], voided["Balance"]) == (0, 0)
    sales_lines = [ln for ln in voided["Line"] if ln["DetailType"] == "SalesItemLineDetail"]
    assert all(ln["Amount"] == 0 and ln["SalesItemLineDetail"]["Qty"] == 0 for ln in sales_lines)
    assert voided["PrivateNote"] == "Voided"
    assert voided["DocNumber"]
    assert voided["CustomerRef"]["value"] == cust
    payment = await books.read("Payment", pid)
    assert (payment["TotalAmt"], payment["UnappliedAmt"], payment["Line"]) == (40.0, 40.0, [])


async def test_delete_invoice_refused_while_payments_are_linked(books: Books) -> None:
    cust = await books.customer()
    inv = await books.invoice(cust, "10.00")
    pid = (
        await books.act("POST", "/payments", {"lines": [{"invoice_id": inv, "amount": "10.00"}]})
    )["Payment"]["Id"]
    refused = await books.act("DELETE", f"/invoices/{inv}", expect=400)
    assert "linked" in refused["detail"]
    await books.act("DELETE", f"/payments/{pid}")
    assert (await books.act("DELETE", f"/invoices/{inv}"))["Invoice"]["status"] == "Deleted"


async def test_edit_customer_renames_everywhere(books: Books) -> None:
    cust = await books.customer("Old Name")
    inv = await books.invoice(cust, "10.00")
    edited = await books.act(
        "PATCH", f"/customers/{cust}", {"display_name": "New Name", "phone": "(555) 010-0000"}
    )
    assert edited["Customer"]["PrimaryPhone"] == {"FreeFormNumber": "(555) 010-0000"}
    assert edited["Customer"]["SyncToken"] == "1"
    assert (await books.read("Invoice", inv))["CustomerRef"] == {"value": cust, "name": "New Name"}
    await books.act("POST", "/customers", {"display_name": "New Name"}, expect=400)
