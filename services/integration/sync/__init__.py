"""Inbound sync from QuickBooks Online: overdue invoices become placements.

* ``mapping``: QBO JSON -> matcher contract messages (pure).
* ``rules``: placement rules, their validation, storage and evaluation.
* ``qbo``: the reads the sync makes, all through ``QboCaller`` (budget, retries).
* ``apply``: "apply entity X as now known" -- shared by the CDC poll, the backfill and the
  webhook processor.
* ``backfill``, ``cdc``, ``preview``: the three ways of reading QBO in bulk.
* ``state``: the per-realm sync state (progress, checkpoint, high-water mark).
* ``runner``: the scheduler that runs backfills and polls in the background.
"""
