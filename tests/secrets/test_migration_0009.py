"""Migration 0009: a plaintext secret written before it is encrypted by the upgrade and
restored by the downgrade, on SQLite and MariaDB."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.security.secrets_at_rest import decrypt
from tests.support.migrations import migrate

SECRETS = {
    "retell_api_key": "key_plain_retell_0123456789abcdef",
    "calcom_webhook_secret": "whsec-plain-0123456789",
    "calcom_api_key": "cal_live_plain_0123456789",
}


async def _rows(url: str) -> dict[str, tuple[str | None, ...]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT name, retell_api_key, calcom_webhook_secret, calcom_api_key"
                    " FROM companies"
                )
            )
            return {row[0]: tuple(row[1:]) for row in rows}
    finally:
        await engine.dispose()


async def _insert_plain(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for name, values in (("with", SECRETS), ("without", dict.fromkeys(SECRETS))):
                await conn.execute(
                    text(
                        "INSERT INTO companies (id, name, timezone, retell_api_key,"
                        " calcom_webhook_secret, calcom_api_key, min_notice_minutes,"
                        " booking_window_days, settings, active, created_at, updated_at)"
                        " VALUES (:id, :name, 'Europe/Berlin', :retell_api_key,"
                        " :calcom_webhook_secret, :calcom_api_key, 120, 60, '{}', 1,"
                        " '2026-12-01 10:00:00', '2026-12-01 10:00:00')"
                    ),
                    {"id": f"company-{name}", "name": name, **values},
                )
    finally:
        await engine.dispose()


async def test_upgrade_encrypts_existing_plaintext_and_downgrade_restores_it(
    empty_database: str,
) -> None:
    await migrate(empty_database, "upgrade", "0008")
    await _insert_plain(empty_database)
    plain = tuple(SECRETS.values())
    assert (await _rows(empty_database))["with"] == plain

    await migrate(empty_database, "upgrade", "0009")
    encrypted = await _rows(empty_database)
    assert encrypted["without"] == (None, None, None)
    for stored, secret in zip(encrypted["with"], plain, strict=True):
        assert stored is not None and secret not in stored
        assert stored.startswith("gAAAAA")  # a Fernet token
        assert decrypt(stored) == secret

    await migrate(empty_database, "downgrade", "0008")
    assert await _rows(empty_database) == {"with": plain, "without": (None, None, None)}
