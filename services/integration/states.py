"""The states of a connection, defined once (every module, and the SQL, uses these)."""

from __future__ import annotations

NOT_CONNECTED = "not_connected"  # reported, never stored: the tenant has no connection row
CONNECTED = "connected"
NEEDS_REAUTHORIZATION = "needs_reauthorization"
DISCONNECTED = "disconnected"
# Reported, never stored: a connected row whose tokens the configured keys cannot open.
TOKENS_UNREADABLE = "tokens_unreadable"

# Live: the connection still owns its company (webhooks are stored, the realm is taken).
LIVE_STATES = (CONNECTED, NEEDS_REAUTHORIZATION)
# The same, as a SQL list for hand-written statements: ``state IN {LIVE_STATES_SQL}``.
LIVE_STATES_SQL = "(" + ", ".join(f"'{s}'" for s in LIVE_STATES) + ")"
