"""QuickBooks Online behind the ``AccountingPlatform`` seam (``platform.QboPlatform``).

* ``oauth``: Intuit OAuth 2.0 (discovery, authorize URL, code exchange, refresh, revoke).
* ``api``: the QBO Accounting API client and its errors (``intuit_tid`` on each).
* ``webhooks``: signature verification and both payload formats, as pure functions.
* ``reader``: the reads the sync makes (queries, CDC), every one through the core's caller.
* ``mapping``: QBO JSON -> accounting facts (the matcher's contract messages).
* ``platform``: the ``AccountingPlatform`` implementation tying these together.

Kept free of imports so that the core can name the entities without loading the client.
"""

from __future__ import annotations

NAME = "qbo"
# The entities the sync reads, in QBO's spelling, in the order CDC asks for them.
ENTITIES = ("Customer", "Payment", "Invoice", "CreditMemo")
