"""Matching settings, owned by the matcher and read at decision time."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from aicollect.db.settings_store import (
    SettingSpec,
    SettingsSnapshot,
    read_settings,
    write_settings,
)
from services.matcher.models import AuditEvent, MatchingSetting

AMOUNT_TOLERANCE = SettingSpec(
    "oob_amount_tolerance_cents",
    int,
    1,
    minimum=0,
    maximum=100_000,
    description="How close to zero (in minor units) an invoice balance must be to count as paid.",
)
MATCH_WINDOW = SettingSpec(
    "oob_match_window_minutes",
    int,
    60,
    minimum=1,
    maximum=7 * 24 * 60,
    description="How far apart a portal payment and its QBO mirror may be.",
)
MATCHING_SPECS = (AMOUNT_TOLERANCE, MATCH_WINDOW)


async def get_matching_settings(session: AsyncSession) -> SettingsSnapshot:
    return await read_settings(session, MatchingSetting, MATCHING_SPECS)


async def update_matching_settings(
    session: AsyncSession, changes: dict[str, object], *, actor: str, reason: str
) -> SettingsSnapshot:
    return await write_settings(
        session,
        MatchingSetting,
        AuditEvent,
        MATCHING_SPECS,
        changes,
        actor=actor,
        reason=reason,
        subject_type="matching_setting",
    )
