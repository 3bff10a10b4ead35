"""Xero behind the ``AccountingPlatform`` seam (``platform.XeroPlatform``).

* ``oauth``: Xero's OAuth 2.0 (authorize URL with read-only scopes, code exchange, refresh,
  revoke) and the access token's claims (the Xero user, the consent's ``authEventId``).
* ``api``: the Accounting API and ``/connections`` client and its errors.
* ``webhooks``: ``x-xero-signature`` over the raw bytes and the payload format.
* ``reader``: the reads the sync makes (by ids, ``If-Modified-Since`` polls, the overdue
  backfill), every one through the core's caller.
* ``facts``: Xero JSON -> accounting facts (the matcher's contract messages): the only
  module that knows both Xero's fields and the matcher's messages.
* ``platform``: the ``AccountingPlatform`` implementation tying these together.

Kept free of imports so that the core can name the entities without loading the client.
"""

from __future__ import annotations

NAME = "xero"
# The entities the sync reads, in the core's canonical spelling (Xero's Contacts are
# ``Customer``, its CreditNotes ``CreditMemo``), in the order the safety-net poll reads them.
ENTITIES = ("Customer", "Payment", "Invoice", "CreditMemo")
