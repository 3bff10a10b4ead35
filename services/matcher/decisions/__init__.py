"""The matcher's decisions: a snapshot, a pure table, its effects.

* ``values.py`` — the frozen values a decision reads and returns;
* ``snapshot.py`` — loads (and locks) everything a decision reads;
* ``outcomes.py`` — verdict → (outcome, audit action, status); the outreach event; the
  terminal and review statuses;
* ``rules/`` — the table, one pure function per row, by family: ``payment_line`` (with
  ``payment_held``, ``payment_mirror``, ``payment_counted``, on ``payment_facts``),
  ``payments``, ``unapplied``, ``invoices``, ``portal``, ``people`` (restore, review flag,
  intake refresh), on ``common`` (``settle``: a verdict becomes the placement's new state,
  audit entry and event);
* ``effects.py`` — writes the effects through the journal, in the caller's transaction.

``services/matcher/matching.py`` orchestrates: load, decide, apply.
"""
