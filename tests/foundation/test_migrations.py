"""The migrations are the only source of the schema, on SQLite and MariaDB alike."""

from __future__ import annotations

from sqlalchemy import inspect, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.models import Base, NotificationEventMapping
from tests.support.migrations import check, migrate

EVENT_TYPES = {
    "booking_confirmed",
    "booking_rescheduled",
    "booking_cancelled",
    "booking_reminder_24h",
    "booking_reminder_2h",
    "booking_no_show",
    "booking_sync_failed",
    "cancellation_fee_charged",
    "modification_quota_exceeded",
    "callback_requested",
    "callback_assigned",
    "callback_overdue",
    "callback_escalated",
}


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    finally:
        await engine.dispose()
    return names - {"alembic_version"}


async def test_upgrade_downgrade_upgrade_then_check(empty_database: str) -> None:
    await migrate(empty_database, "upgrade", "head")
    assert await _tables(empty_database) == set(Base.metadata.tables)
    await migrate(empty_database, "downgrade", "base")
    assert await _tables(empty_database) == set()
    await migrate(empty_database, "upgrade", "head")
    assert await _tables(empty_database) == set(Base.metadata.tables)
    await check(empty_database)  # raises if models and migrations differ


async def test_datetimes_keep_microseconds(empty_database: str, backend: str) -> None:
    await migrate(empty_database, "upgrade", "head")
    engine = create_async_engine(empty_database)
    try:
        async with engine.connect() as conn:
            if backend == "mysql":
                row = await conn.execute(
                    text(
                        "SELECT DATETIME_PRECISION FROM information_schema.COLUMNS "
                        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'appointments' "
                        "AND COLUMN_NAME = 'starts_at'"
                    )
                )
                assert row.scalar_one() == 6
    finally:
        await engine.dispose()


async def test_the_13_notification_event_types_are_seeded(db: Database) -> None:
    async with db.transaction(SYSTEM, write=False) as session:
        rows = (await session.execute(select(NotificationEventMapping))).scalars().all()
    assert {row.event_type for row in rows} == EVENT_TYPES
    assert len(rows) == 13
    labels = {row.event_type: (row.event_label, row.event_label_en) for row in rows}
    assert labels["booking_cancelled"] == ("Termin storniert", "Booking cancelled")
    assert labels["callback_overdue"] == ("Rückruf überfällig", "Callback overdue")
    assert all(row.default_channels for row in rows)
