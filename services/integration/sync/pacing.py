"""How often a realm is polled: the configured interval, stretched as the platform's daily
request budget runs low (Xero: 5,000 calls a day per organisation), so that the safety-net
poll never spends what webhook re-reads and payments need.

The day's use is read from the shared request ledger (``budget.SharedBudget``), so it
counts every replica's requests. With ``share`` of the daily budget left, the interval is
``base / share`` (half left: twice as long), at most ``MAX_STRETCH`` times ``base`` and
at most ``MAX_INTERVAL_S``; a platform without a daily window is polled every ``base``.
"""

from __future__ import annotations

from sqlalchemy import text

from services.integration.sync.context import SyncDeps

DAY_S = 86_400.0
MAX_STRETCH = 16.0
MAX_INTERVAL_S = 6 * 3600.0

_USED = text(
    """
    SELECT cardinality(ARRAY(
        SELECT t FROM unnest(started) AS t
        WHERE t > extract(epoch FROM clock_timestamp())::float8 - :seconds
    ))
    FROM integration.request_budgets
    WHERE provider = :provider AND realm_id = :realm
    """
)


async def used_in(deps: SyncDeps, realm_id: str, seconds: float) -> int:
    """Requests started for the realm in the last ``seconds`` (every replica's)."""
    async with deps.engine.connect() as conn:
        found = await conn.scalar(
            _USED, {"provider": deps.platform.name, "realm": realm_id, "seconds": seconds}
        )
    return int(found or 0)


def stretched(base_s: float, cap: int, used: int) -> float:
    """The interval for a daily budget of ``cap`` of which ``used`` is spent."""
    if cap <= 0:
        return base_s
    share = max(0.0, (cap - used) / cap)
    factor = MAX_STRETCH if share <= 1 / MAX_STRETCH else 1 / share
    return max(base_s, min(base_s * factor, MAX_INTERVAL_S))


async def poll_interval(deps: SyncDeps, realm_id: str, base_s: float) -> float:
    daily = [w for w in deps.platform.request_limits.windows if w.seconds >= DAY_S]
    if not daily:
        return base_s
    window = min(daily, key=lambda w: w.requests)
    return stretched(base_s, window.requests, await used_in(deps, realm_id, window.seconds))
