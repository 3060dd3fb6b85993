"""SQL statements per successful booking, counted in-process with a `before_cursor_execute` hook.

The booking app runs in this process (lifespan entered, httpx ASGITransport) against the same
MariaDB database. One booking warms the API-key cache first; then each case is one POST.
The hook sees every statement sent through a cursor; the pool's pre-ping and the COMMIT are
driver calls, not statements, and are counted separately.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.engine import Engine

from services.booking.app import create as create_booking
from shared.config import Settings
from tests.bench.dataset import BenchTenant, SlotPlan, phone

# Statements of the bare booking: staff row FOR UPDATE, overlap SELECT, INSERT.
BASELINE_STATEMENTS = 3


@dataclass
class Tally:
    statements: list[str] = field(default_factory=list)
    commits: int = 0
    pings: int = 0

    def clear(self) -> None:
        self.statements.clear()
        self.commits = 0
        self.pings = 0


@contextmanager
def counting(engine: Engine) -> Iterator[Tally]:
    tally = Tally()

    def on_statement(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        tally.statements.append(statement)

    def on_commit(_conn: Any) -> None:
        tally.commits += 1

    def on_checkout(*_args: Any) -> None:
        # pool_pre_ping pings on every checkout, before the pool hands the connection out.
        tally.pings += 1

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "commit", on_commit)
    event.listen(engine.pool, "checkout", on_checkout)
    try:
        yield tally
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        event.remove(engine, "commit", on_commit)
        event.remove(engine.pool, "checkout", on_checkout)


@dataclass(frozen=True)
class StatementCase:
    name: str
    statements: int
    commits: int
    checkouts: int
    sql: tuple[str, ...]


def _short(statement: str) -> str:
    flat = " ".join(statement.split())
    return flat if len(flat) <= 110 else flat[:107] + "..."


async def count_statements(
    tenant: BenchTenant, plan: SlotPlan, settings: Settings, first_phone: int
) -> list[StatementCase]:
    """Statements of one booking POST: new/returning customer, with/without Idempotency-Key."""
    app = create_booking(settings)
    returning = phone(first_phone)
    cases = [
        ("new customer", phone(first_phone + 1), False),
        ("returning customer", returning, False),
        ("new customer + Idempotency-Key", phone(first_phone + 2), True),
        ("returning customer + Idempotency-Key", returning, True),
    ]
    slots = plan.take(len(cases) + 1)
    results: list[StatementCase] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://booking.bench"
        ) as client:

            async def post(staff_id: str, start: Any, number: str, keyed: bool) -> None:
                headers = dict(tenant.salon.headers)
                if keyed:
                    headers["Idempotency-Key"] = str(uuid.uuid4())
                body = {
                    "service_id": tenant.book_service_id,
                    "staff_id": staff_id,
                    "start": start.isoformat(),
                    "customer": {"name": "Stamm Kundin", "phone": number},
                }
                response = await client.post("/v1/appointments", json=body, headers=headers)
                if response.status_code != 201:
                    raise RuntimeError(f"booking failed: {response.status_code} {response.text}")

            # Warms the key cache and SQLAlchemy's compiled cache; makes `returning` known.
            await post(*slots[0], returning, False)
            with counting(app.state.db.engine.sync_engine) as tally:
                for (name, number, keyed), (staff_id, start) in zip(cases, slots[1:], strict=True):
                    tally.clear()
                    await post(staff_id, start, number, keyed)
                    results.append(
                        StatementCase(
                            name,
                            len(tally.statements),
                            tally.commits,
                            tally.pings,
                            tuple(_short(s) for s in tally.statements),
                        )
                    )
    return results
