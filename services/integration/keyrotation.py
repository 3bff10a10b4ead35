"""``aicollect rotate-keys``: re-encrypt every stored token under the newest key.

Add the new key first in ``AICOLLECT_TOKEN_KEYS`` (newest first, old keys kept), deploy,
run this command, and only then drop the old key. Rows are re-sealed in place under a
row lock, so a concurrent refresh either waits or writes fresh values sealed with the
newest key anyway. Running it twice is harmless. A value no configured key opens is
reported (row and key id) and left as it is; it never stops the other rows, and the
command exits non-zero so that the old key is not dropped while anything needs it.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aicollect import logs
from aicollect.crypto import DecryptError, KeyConfigError, TokenCipher
from aicollect.db.engine import make_engine, make_sessionmaker
from aicollect.settings import MissingSettingError, Settings
from services.integration.models import Connection, PendingRevocation
from services.integration.tokens import (
    REVOKE_REMEDY,
    revocation_identity,
    token_identity,
    unreadable,
)

BATCH = 200


@dataclass
class RotationReport:
    connections: int = 0
    pending_revocations: int = 0
    already_current: int = 0
    # Values no configured key opens, each named by row and key id (never the value):
    # left as they are; every other row is re-sealed all the same.
    unreadable: list[str] = field(default_factory=list)


async def rotate_keys(
    sessions: async_sessionmaker[AsyncSession], cipher: TokenCipher
) -> RotationReport:
    report = RotationReport()
    last = ""
    while True:
        async with sessions.begin() as session:
            rows = list(
                (
                    await session.execute(
                        select(Connection)
                        .where(Connection.tenant_id > last)
                        .order_by(Connection.tenant_id)
                        .limit(BATCH)
                        .with_for_update()
                    )
                ).scalars()
            )
            for row in rows:
                for kind in ("access", "refresh"):
                    column = f"{kind}_token"
                    sealed = getattr(row, column)
                    if sealed is None or row.realm_id is None:
                        continue
                    if not cipher.needs_rotation(sealed):
                        report.already_current += 1
                        continue
                    identity = token_identity(row.tenant_id, row.realm_id, kind)
                    try:
                        setattr(row, column, cipher.reseal(sealed, identity))
                    except DecryptError:
                        report.unreadable.append(
                            f"connection of tenant '{row.tenant_id}' ({kind} token): "
                            + unreadable(cipher, sealed, "it").message
                        )
                        continue
                    report.connections += 1
        if len(rows) < BATCH:
            break
        last = rows[-1].tenant_id
    async with sessions.begin() as session:
        pending = (await session.execute(select(PendingRevocation).with_for_update())).scalars()
        for item in pending:
            if cipher.needs_rotation(item.token):
                identity = item.token_identity or revocation_identity(item.id)
                try:
                    item.token = cipher.reseal(item.token, identity)
                except DecryptError:
                    report.unreadable.append(
                        f"pending revocation {item.id} of tenant '{item.tenant_id}': "
                        + unreadable(cipher, item.token, "it", REVOKE_REMEDY).message
                    )
                    continue
                report.pending_revocations += 1
    return report


def main() -> int:
    """``aicollect rotate-keys``: 0 when every token is sealed under the newest key."""
    settings = Settings.from_env()
    logs.configure("rotate-keys", level=settings.log_level, fmt="text")
    try:
        settings.require("AICOLLECT_DATABASE_URL", "AICOLLECT_TOKEN_KEYS")
        assert settings.token_keys is not None
        cipher = TokenCipher.from_spec(settings.token_keys.get_secret_value())
    except (MissingSettingError, KeyConfigError) as exc:
        print(f"rotate-keys: {exc}", file=sys.stderr)
        return 2
    assert settings.database_url is not None
    url = settings.database_url

    async def run() -> int:
        engine = make_engine(url, pool_size=2)
        try:
            report = await rotate_keys(make_sessionmaker(engine), cipher)
        finally:
            await engine.dispose()
        print(
            f"re-encrypted under key '{cipher.current_kid}': "
            f"{report.connections} connection token(s), "
            f"{report.pending_revocations} pending revocation(s); "
            f"{report.already_current} already current"
        )
        for problem in report.unreadable:
            print(f"rotate-keys: not re-encrypted: {problem}", file=sys.stderr)
        return 1 if report.unreadable else 0

    return asyncio.run(run())
