"""Inbound sync from the accounting platform: overdue invoices become placements.

* ``context``: ``SyncDeps``, all the sync receives (the platform's reader among it).
* ``rules``: placement rules, their validation, storage and evaluation.
* ``apply``: "apply entity X as now known" -- shared by the CDC poll, the backfill and the
  webhook processor.
* ``backfill``, ``cdc``, ``preview``: the three ways of reading QBO in bulk.
* ``state``: the per-realm sync state (progress, checkpoint, high-water mark).
* ``runner``: the scheduler that runs backfills and polls in the background.
"""
