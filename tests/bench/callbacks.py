"""Callback figures (issue 6): the overdue list as `GET /v1/callbacks?overdue=true` runs it,
and the escalation cron's scan, against 100,000 callback rows on MariaDB.

One company with 50 branches holds the rows: most resolved, some contacted or expired, about
10 % open (pending or assigned), two thirds of those past their due time. The rows go in with
Core bulk inserts. Each query runs 200 times, each in its own read-only transaction bound as
the real caller binds it (the company for the list, SYSTEM for the cron's scan); the EXPLAIN
of the exact SQL the driver received is printed beside the figures.
"""

from __future__ import annotations

import gc
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.callbacks import service as callbacks
from services.booking.callbacks.escalation import due_callbacks
from shared.appointments.callbacks import DEFAULT_SLA_MINUTES
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.models import Branch, CallbackEscalation, CallbackRequest, Company, Staff
from tests.bench.load import percentile
from tests.bench.report import Figure

ROWS = 100_000
BRANCHES = 50
RUNS = 200
SCAN_BATCH = 100
TARGET_P95_MS = 10.0
CHUNK = 5_000
# Share of the rows per status; open ones (pending, assigned) are about 10 %.
STATUS_WEIGHTS = {"resolved": 84, "contacted": 3, "expired": 3, "pending": 6, "assigned": 4}

Query = Callable[[AsyncSession], Awaitable[Any]]
# The tables themselves: bulk inserts in Core, no ORM objects.
CALLBACKS = cast(sa.Table, CallbackRequest.__table__)
ESCALATIONS = cast(sa.Table, CallbackEscalation.__table__)


@contextmanager
def captured_sql(db: Database) -> Iterator[list[tuple[str, Any]]]:
    """The statements (and parameters) the driver receives meanwhile, as executed: with the
    tenant filter the data layer adds."""
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        statements.append((statement, params))

    sa.event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def last_select(db: Database, tenant: str, query: Query) -> tuple[str, Any]:
    """The SQL and parameters of the first SELECT of `query` that reads callback_requests,
    bound to `tenant`."""
    with captured_sql(db) as statements:
        async with db.transaction(tenant, write=False) as session:
            await query(session)
    return next(
        s
        for s in statements
        if s[0].lstrip().upper().startswith("SELECT") and "callback_requests" in s[0]
    )


async def explain(db: Database, tenant: str, query: Query) -> list[dict[str, Any]]:
    """MariaDB's EXPLAIN rows of the SELECT `query` sends, bound to `tenant`."""
    sql, params = await last_select(db, tenant, query)
    async with db.engine.connect() as conn:
        result = await conn.exec_driver_sql(f"EXPLAIN {sql}", params)
        return [dict(row._mapping) for row in result]


def overdue_list(now: datetime) -> Query:
    async def run(session: AsyncSession) -> Any:
        return await callbacks.list_views(session, overdue=True, now=now)

    return run


def cron_scan(now: datetime) -> Query:
    async def run(session: AsyncSession) -> Any:
        return await due_callbacks(session, now, SCAN_BATCH)

    return run


def _callback_rows(
    company_id: str, branch_ids: list[str], staff_ids: list[str], now: datetime, rows: int
) -> Iterator[dict[str, Any]]:
    rng = random.Random(6)
    statuses = list(STATUS_WEIGHTS)
    weights = list(STATUS_WEIGHTS.values())
    for n in range(rows):
        status = rng.choices(statuses, weights)[0]
        if status in callbacks.OVERDUE_STATUSES:
            created = now - timedelta(minutes=rng.uniform(0, 6 * 60))  # due -4 h .. +2 h
        else:
            created = now - timedelta(minutes=rng.uniform(3 * 60, 180 * 24 * 60))
        due = created + timedelta(minutes=DEFAULT_SLA_MINUTES)
        next_look: datetime | None = None
        if status in callbacks.OVERDUE_STATUSES:
            if due > now:
                next_look = due
            else:  # mostly handled by the cron already; a few left for its next run
                next_look = rng.choices([None, due + timedelta(minutes=60), due], [60, 35, 5])[0]
        yield {
            "id": str(uuid.uuid4()),
            "company_id": company_id,
            "branch_id": branch_ids[n % len(branch_ids)],
            "phone_number": f"+49170{n:07d}",
            "customer_name": f"Kunde {n}",
            "reason": "Rückruf erbeten",
            "priority": "normal",
            "status": status,
            "assigned_to": rng.choice(staff_ids) if status != "pending" else None,
            "due_at": due,
            "next_escalation_at": next_look,
            "resolved_at": due if status == "resolved" else None,
            "created_at": created,
            "updated_at": created,
        }


async def seed(db: Database, now: datetime, rows: int = ROWS, branches: int = BRANCHES) -> str:
    """A new company with `branches` branches (one staff member each) and `rows` callbacks;
    about a third of the escalated ones carry a second level. Returns the company id."""
    async with db.transaction(SYSTEM) as session:
        company = Company(name=f"Callback Bench {uuid.uuid4().hex[:8]}")
        session.add(company)
        await session.flush()
        company_id = company.id
    async with db.transaction(company_id) as session:
        made = [Branch(name=f"Filiale {n:02d}", timezone="Europe/Berlin") for n in range(branches)]
        session.add_all(made)
        await session.flush()
        staff = [Staff(branch_id=branch.id, name=f"Team {branch.name}") for branch in made]
        session.add_all(staff)
        await session.flush()
        branch_ids = [branch.id for branch in made]
        staff_ids = [member.id for member in staff]
    source = _callback_rows(company_id, branch_ids, staff_ids, now, rows)
    while chunk := [row for _, row in zip(range(CHUNK), source, strict=False)]:
        escalations = _escalations(chunk)
        levels: dict[str, int] = {}
        for escalation in escalations:
            levels[escalation["callback_request_id"]] = escalation["level"]
        for callback in chunk:
            callback["escalation_level"] = levels.get(callback["id"], 0)
        async with db.transaction(SYSTEM) as session:
            await session.execute(sa.insert(CALLBACKS), chunk)
            await session.execute(sa.insert(ESCALATIONS), escalations)
    async with db.engine.connect() as conn:
        for table in ("callback_requests", "callback_escalations"):
            analyze = "ANALYZE" if db.is_sqlite else "ANALYZE TABLE"
            await conn.exec_driver_sql(f"{analyze} {table}")
    return company_id


def _escalations(callbacks_: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Level 1 for the callbacks handled past their due time (every third one), level 2 for
    a third of those."""
    rows: list[dict[str, Any]] = []
    for n, cb in enumerate(callbacks_):
        if n % 3:
            continue
        for level in (1, 2) if n % 9 == 0 else (1,):
            rows.append(
                {
                    "id": str(uuid.uuid4()),
                    "company_id": cb["company_id"],
                    "callback_request_id": cb["id"],
                    "escalation_reason": "overdue" if level == 1 else "sla_escalation",
                    "escalated_from": cb["assigned_to"],
                    "level": level,
                    "escalated_at": cb["due_at"] + timedelta(minutes=60 * (level - 1)),
                }
            )
    return rows


async def _timed(db: Database, tenant: str, query: Query) -> tuple[list[float], int]:
    """RUNS calls of `query`, each in its own read-only transaction (timed: the call)."""
    latencies: list[float] = []
    count = 0
    for _ in range(RUNS):
        async with db.transaction(tenant, write=False) as session:
            started = time.perf_counter()
            result = await query(session)
            latencies.append((time.perf_counter() - started) * 1000)
        count = len(result)
    return latencies, count


async def _timed_sql(db: Database, sql: str, params: Any) -> list[float]:
    """RUNS executions of the same SQL through the driver alone: the database's share."""
    latencies: list[float] = []
    async with db.engine.connect() as conn:
        for _ in range(RUNS):
            started = time.perf_counter()
            (await conn.exec_driver_sql(sql, params)).all()
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def _percentiles(latencies: list[float]) -> str:
    p50, p95, p99 = (percentile(latencies, p) for p in (50, 95, 99))
    return f"p50 {p50:.2f} ms, p95 {p95:.2f} ms, p99 {p99:.2f} ms"


def _print_plan(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        print(
            f"    EXPLAIN id={row.get('id')} {row.get('select_type')} table={row.get('table')}"
            f" type={row.get('type')} key={row.get('key')} rows={row.get('rows')}"
            f" extra={row.get('Extra')}"
        )


async def _figure(db: Database, name: str, tenant: str, query: Query) -> Figure:
    await _timed(db, tenant, query)  # warm-up: connections, statement cache, buffer pool
    latencies, count = await _timed(db, tenant, query)
    sql, params = await last_select(db, tenant, query)
    await _timed_sql(db, sql, params)
    print(f"  {name}: {count} rows; {RUNS} runs, target p95 < {TARGET_P95_MS:g} ms")
    print(f"    as called (ORM, rows loaded): {_percentiles(latencies)}")
    print(f"    its SQL alone (driver):      {_percentiles(await _timed_sql(db, sql, params))}")
    _print_plan(await explain(db, tenant, query))
    return Figure(f"{name} p95", percentile(latencies, 95), None, TARGET_P95_MS, "ms")


async def section(url: str) -> list[Figure]:
    """Figure 9: seed, then time the overdue list and the cron's scan (p95)."""
    db = Database(settings=Settings(database_url=url, environment="test"))
    try:
        now = datetime.now(UTC)
        started = time.monotonic()
        company_id = await seed(db, now)
        async with db.transaction(company_id, write=False) as session:
            per_status = dict(
                (
                    await session.execute(
                        sa.select(CallbackRequest.status, sa.func.count()).group_by(
                            CallbackRequest.status
                        )
                    )
                ).all()
            )
            overdue = await session.scalar(
                sa.select(sa.func.count())
                .select_from(CallbackRequest)
                .where(
                    CallbackRequest.status.in_(callbacks.OVERDUE_STATUSES),
                    CallbackRequest.due_at < now,
                )
            )
        print(
            f"  seeded {ROWS:,} callbacks over {BRANCHES} branches in "
            f"{time.monotonic() - started:.1f} s: {per_status}; {overdue} overdue"
        )
        # Measured in this process, whose heap still holds what seeding and the earlier
        # sections built; a service freezes its start-up heap (shared/gc_tuning.py) and holds
        # none of that, so neither may the collector's full scans here.
        gc.collect()
        gc.freeze()
        return [
            await _figure(db, "9 callbacks overdue list", company_id, overdue_list(now)),
            await _figure(db, "9b callback escalation scan", SYSTEM, cron_scan(now)),
        ]
    finally:
        await db.dispose()
