"""shared/db/raw_sql.py: a Core SELECT read through the raw pool gives the rows a session
gives (same types: UTC-aware instants, Decimal money), its parameters bound by the column
types; an INSERT commits by itself; a statement over its deadline fails and its connection
never serves another statement. SQLite has no raw pool (sessions are used there)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from services.policy import queries as store
from shared.config import Settings
from shared.db.engine import Database
from shared.db.raw_sql import RawPool, RawStatement
from shared.db.scoped import scoped
from shared.db.tenancy import PER_CALL, SYSTEM
from shared.models import Appointment, AppointmentModification, Customer, WebhookEvent
from tests.support.factories import create_salon, salon_appointment


@pytest.fixture
def reads(db: Database, backend: str) -> RawPool:
    if backend == "sqlite":
        assert db.raw is None
        pytest.skip("SQLite has no raw read pool: the lean routes read through sessions")
    assert db.raw is not None
    return db.raw


def test_sqlite_and_a_zero_pool_size_have_no_raw_reads(settings: Settings) -> None:
    off = Database(settings=settings.model_copy(update={"raw_pool_size": 0}))
    assert off.raw is None
    sqlite = Database(settings=settings.model_copy(update={"database_url": "sqlite+aiosqlite://"}))
    assert sqlite.raw is None


async def _appointment_rows(db: Database) -> tuple[str, str, datetime]:
    salon = await create_salon(db)
    company = salon.tenant.company_id
    start = datetime(2027, 3, 28, 0, 30, tzinfo=UTC)  # the night Berlin moves to CEST
    async with db.transaction(company) as session:
        customer = Customer(name="Erika", phone="+491701111111")
        session.add(customer)
        await session.flush()
        appointment = salon_appointment(
            salon, customer.id, start, status="confirmed", source="api", price=Decimal("28.50")
        )
        session.add(appointment)
        await session.flush()
        for hours in (1, 47, 49):
            session.add(
                AppointmentModification(
                    appointment_id=appointment.id,
                    customer_id=customer.id,
                    modification_type="cancel",
                    actor="agent",
                    created_at=datetime.now(UTC) - timedelta(hours=hours),
                )
            )
    return company, customer.id, start


async def test_rows_read_as_through_a_session(db: Database, reads: RawPool) -> None:
    company, customer, start = await _appointment_rows(db)
    statement = sa.select(
        Appointment.id,
        Appointment.starts_at,
        Appointment.price,
        Appointment.status,
        Appointment.customer_id,
    ).where(Appointment.starts_at == start)
    async with db.transaction(company, write=False) as session:
        expected = (await session.execute(statement)).one()
    row = await reads.first(scoped(statement, PER_CALL), {}, tenant=company)
    assert tuple(row) == tuple(expected)
    assert row.starts_at == start and row.starts_at.tzinfo is UTC
    assert row.price == Decimal("28.50") and isinstance(row.price, Decimal)
    assert row.status == "confirmed"
    assert await reads.first(scoped(statement, PER_CALL), {}, tenant="another-company") is None

    # An aware instant is bound as naive UTC, as the column type does for a session.
    since = datetime.now(UTC).astimezone(ZoneInfo("Europe/Berlin")) - timedelta(hours=48)
    params = store.recent_params(customer, "cancel", since)
    recent = await reads.scalars(store.RECENT_MODIFICATIONS, params, tenant=company)
    async with db.transaction(company, write=False) as session:
        via_session = await store.recent_modifications(session, company, customer, "cancel", since)
    assert sorted(recent) == sorted(via_session)
    assert len(recent) == 2 and all(value.tzinfo is UTC for value in recent)
    assert await reads.scalars(store.RECENT_MODIFICATIONS, params, tenant="x") == []


def test_a_statement_compiles_once_with_its_literals(db: Database, backend: str) -> None:
    statement = sa.select(AppointmentModification.id).where(
        AppointmentModification.modification_type == "reschedule",
        AppointmentModification.customer_id == sa.bindparam("customer"),
    )
    compiled = RawStatement(statement, db.engine.dialect)
    assert compiled.arguments({"customer": "c1"}).count("reschedule") == 1
    assert "c1" in compiled.arguments({"customer": "c1"})
    expanding = sa.select(Appointment.id).where(
        Appointment.id.in_(sa.bindparam("ids", expanding=True))
    )
    if backend == "mysql":
        with pytest.raises(ValueError, match="expand"):
            RawStatement(expanding, db.engine.dialect)


async def test_a_statement_past_its_deadline_fails_and_its_connection_is_dropped(
    settings: Settings, backend: str
) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite has no raw read pool")
    slow_db = Database(
        settings=settings.model_copy(update={"raw_timeout_s": 0.3, "raw_pool_size": 1})
    )
    reads = slow_db.raw
    assert reads is not None
    sleep = scoped(sa.select(sa.func.sleep(sa.bindparam("seconds")).label("slept")), SYSTEM)
    try:
        assert (await reads.first(sleep, {"seconds": 0}, tenant=SYSTEM)).slept == 0
        with pytest.raises(TimeoutError):
            await reads.first(sleep, {"seconds": 2}, tenant=SYSTEM)
        # The one connection of the pool was closed, not handed out mid-statement again.
        for _ in range(3):
            assert (await reads.first(sleep, {"seconds": 0}, tenant=SYSTEM)).slept == 0
    finally:
        await slow_db.dispose()


async def test_an_insert_commits_by_itself_and_ignores_a_duplicate(
    db: Database, reads: RawPool
) -> None:
    """The webhook store's INSERT IGNORE: 1 row, then 0 for the same dedupe key; the row is
    committed when `execute` returns (a session sees it) with its JSON and UTC instant."""
    from services.webhooks.ingest.service import _INSERT_RAW

    tenant = await create_salon(db)
    now = datetime.now(UTC).replace(microsecond=0)
    payload = {"triggerEvent": "BOOKING_CREATED", "payload": {"uid": "u1", "title": "Ünïcode"}}
    values = {
        "id": str(uuid.uuid4()),
        "company_id": tenant.tenant.company_id,
        "source": "calcom",
        "event_id": uuid.uuid4().hex,
        "event_type": "BOOKING_CREATED",
        "payload": payload,
        "status": "pending",
        "correlation_id": None,
        "attempts": 0,
        "error_message": None,
        "processed_at": None,
        "created_at": now,
        "updated_at": now,
    }
    assert await reads.execute(_INSERT_RAW, values, tenant=SYSTEM) == 1
    assert await reads.execute(_INSERT_RAW, {**values, "id": str(uuid.uuid4())}, tenant=SYSTEM) == 0
    async with db.transaction(SYSTEM, write=False) as session:
        stored = (
            await session.scalars(
                sa.select(WebhookEvent).where(WebhookEvent.event_id == values["event_id"])
            )
        ).all()
    assert [(row.id, row.payload, row.created_at, row.status) for row in stored] == [
        (values["id"], payload, now, "pending")
    ]
