"""The scaling section's branch: 50 staff, two years of appointments (past and future), grown
in stages by bulk INSERTs.

Every appointment is 30 minutes on the 30-minute grid of `BOOK_TIMES` (the service has no
buffer), so appointments at distinct (staff, day, grid slot) positions never overlap. Days
relative to today (Europe/Berlin):

- 0..14, the measured window (availability asks 7 days from days 1..7): filled once, in the
  first stage, with `WINDOW_PER_STAFF_DAY` appointments per staff member and working day, and
  never again: every stage measures the same work (the same appointments in the window) on
  more data around it;
- 15..24, kept free for the bookings the section measures (`SlotPlan(staff, 15, 24)`);
- -365..-1 and 25..364, the rest of the history, filled in a shuffled order stage by stage.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from shared.db.engine import Database
from shared.db.raw_sql import RawStatement
from shared.db.tenancy import SYSTEM
from shared.models import Appointment, Customer, Staff, StaffService
from shared.security.references import ALPHABET, LENGTH
from tests.bench.dataset import BOOK_TIMES, _hours, local_day, local_start, phone
from tests.support.factories import Salon, create_salon, create_tenant

STAFF = 50
CUSTOMERS = 1000
WINDOW_DAYS = range(0, 15)
BOOKING_DAYS = range(15, 25)
HISTORY_DAYS = range(-365, 365)
WINDOW_PER_STAFF_DAY = 2
BATCH = 5000
SLOT = timedelta(minutes=30)
LOAD_CHECKS = "SET SESSION foreign_key_checks = {value}, unique_checks = {value}"
# Seeded ids ascend (fe000000-...-000000000001, ...): InnoDB appends them to the clustered
# index instead of splitting pages at random places as uuid4 ids would.
ID_PREFIX = 0xFE << 120
ROW_COLUMNS = (
    "id", "company_id", "branch_id", "service_id", "staff_id", "customer_id", "starts_at",
    "ends_at", "blocked_from", "blocked_until", "status", "sync_status", "source", "price",
    "currency", "version", "reference", "created_at", "updated_at",
)  # fmt: skip


@dataclass(frozen=True)
class Position:
    """An appointment's place: staff index, day offset from today, index into BOOK_TIMES."""

    staff: int
    day: int
    slot: int


def working(offset: int) -> bool:
    """Mon-Sat, as the staff's working hours."""
    return local_day(offset).weekday() < 6


class Layout:
    """The positions of the branch's appointments, in seeding order: the window's first, then
    the history's in a fixed shuffled order; `take(n)` hands out the next n, never one twice."""

    def __init__(
        self,
        staff: int = STAFF,
        seed: int = 20261207,
        window_per_staff_day: int = WINDOW_PER_STAFF_DAY,
    ) -> None:
        rng = random.Random(seed)
        slots = len(BOOK_TIMES)
        self.window = [
            Position(member, day, slot)
            for day in WINDOW_DAYS
            if working(day)
            for member in range(staff)
            for slot in sorted(rng.sample(range(slots), window_per_staff_day))
        ]
        reserved = set(WINDOW_DAYS) | set(BOOKING_DAYS)
        days = [day for day in HISTORY_DAYS if day not in reserved and working(day)]
        # One int per position (day index, slot, staff): half a million of them stay small.
        self._history = list(range(len(days) * slots * staff))
        rng.shuffle(self._history)
        self._days, self._slots, self._staff = days, slots, staff
        self.taken = 0

    @property
    def capacity(self) -> int:
        return len(self.window) + len(self._history)

    def _history_position(self, code: int) -> Position:
        rest, member = divmod(code, self._staff)
        day, slot = divmod(rest, self._slots)
        return Position(member, self._days[day], slot)

    def take(self, count: int) -> list[Position]:
        if self.taken + count > self.capacity:
            raise RuntimeError(f"scaling layout exhausted ({self.capacity} positions)")
        out: list[Position] = []
        end = self.taken + count
        for index in range(self.taken, end):
            if index < len(self.window):
                out.append(self.window[index])
            else:
                out.append(self._history_position(self._history[index - len(self.window)]))
        self.taken = end
        return out


def interval(position: Position) -> tuple[datetime, datetime]:
    """The UTC start and end of the appointment at `position`."""
    start = local_start(local_day(position.day), BOOK_TIMES[position.slot]).astimezone(UTC)
    return start, start + SLOT


def reference(n: int) -> str:
    """The n-th reference in base 31 of the references' alphabet (distinct for distinct n)."""
    chars = []
    for _ in range(LENGTH):
        n, digit = divmod(n, len(ALPHABET))
        chars.append(ALPHABET[digit])
    return "".join(reversed(chars))


@dataclass
class ScalingBranch:
    salon: Salon  # its own company; the branch "Mitte" with STAFF staff members
    staff_ids: tuple[str, ...]
    customer_ids: tuple[str, ...]
    layout: Layout
    # The bare baseline's bookings are written for this other company: its random references
    # cannot collide with the seeded ones (unique per company).
    bare_company_id: str
    next_reference: int = 0
    next_id: int = 0

    @property
    def company_id(self) -> str:
        return self.salon.tenant.company_id


async def create_scaling_branch(db: Database, layout: Layout | None = None) -> ScalingBranch:
    """A company with one branch of STAFF staff (Mon-Sat hours), a 30-min service without
    buffer, and CUSTOMERS customers; no appointments yet."""
    salon = await create_salon(db, buffer_after=0)
    company_id = salon.tenant.company_id
    async with db.transaction(company_id) as session:
        staff = [Staff(branch_id=salon.branch_id, name=f"Team {n:02d}") for n in range(STAFF - 2)]
        session.add_all(staff)
        await session.flush()
        for member in staff:
            session.add(StaffService(staff_id=member.id, service_id=salon.service_id))
            session.add_all(_hours(member.id))
    now = datetime.now(UTC)
    customers = [
        {
            "id": str(uuid.uuid4()),
            "company_id": company_id,
            "name": f"Kundin {i}",
            "phone": phone(3_000_000 + i),
            "language": "de",
            "created_at": now,
            "updated_at": now,
        }
        for i in range(CUSTOMERS)
    ]
    async with db.transaction(SYSTEM) as session:
        await session.execute(sa.insert(Customer), customers)
    return ScalingBranch(
        salon=salon,
        staff_ids=(*salon.staff_ids, *(member.id for member in staff)),
        customer_ids=tuple(str(c["id"]) for c in customers),
        layout=layout or Layout(),
        bare_company_id=(await create_tenant(db, name="Bench Scaling Baseline")).company_id,
    )


async def appointment_count(db: Database, branch: ScalingBranch) -> int:
    async with db.transaction(branch.company_id, write=False) as session:
        found = await session.scalar(
            sa.select(sa.func.count())
            .select_from(Appointment)
            .where(Appointment.branch_id == branch.salon.branch_id)
        )
    return int(found or 0)


def rows(
    branch: ScalingBranch, positions: Iterable[Position], references: Iterator[str]
) -> list[dict[str, Any]]:
    """The appointment rows at `positions`: past ones completed, 10 % cancelled."""
    rng = random.Random(len(branch.customer_ids) + branch.next_reference)
    now = datetime.now(UTC)
    out = []
    for position in positions:
        start, end = interval(position)
        branch.next_id += 1
        status = "cancelled" if rng.random() < 0.1 else "completed" if end < now else "confirmed"
        out.append(
            {
                "id": str(uuid.UUID(int=ID_PREFIX | branch.next_id)),
                "company_id": branch.company_id,
                "branch_id": branch.salon.branch_id,
                "service_id": branch.salon.service_id,
                "staff_id": branch.staff_ids[position.staff],
                "customer_id": rng.choice(branch.customer_ids),
                "starts_at": start,
                "ends_at": end,
                "blocked_from": start,
                "blocked_until": end,
                "status": status,
                "sync_status": "local_only",
                "source": "api",
                "price": Decimal("28.00"),
                "currency": "EUR",
                "version": 1,
                "reference": next(references),
                "created_at": now,
                "updated_at": now,
            }
        )
    return out


async def grow(db: Database, branch: ScalingBranch, target: int) -> int:
    """Add appointments until the branch holds `target` (bookings made meanwhile count);
    INSERTs of BATCH rows, one transaction each. Returns how many were added."""
    missing = target - await appointment_count(db, branch)
    if missing <= 0:
        return 0
    # The bookings (all in BOOKING_DAYS) drew their references at random: skip those.
    first, _ = interval(Position(0, BOOKING_DAYS[0], 0))
    after, _ = interval(Position(0, BOOKING_DAYS[-1] + 1, 0))
    async with db.transaction(branch.company_id, write=False) as session:
        taken = set(
            await session.scalars(
                sa.select(Appointment.reference).where(
                    Appointment.branch_id == branch.salon.branch_id,
                    Appointment.starts_at >= first,
                    Appointment.starts_at < after,
                )
            )
        )

    def references() -> Iterator[str]:
        while True:
            code = reference(branch.next_reference)
            branch.next_reference += 1
            if code not in taken:
                yield code

    codes = references()
    insert = _insert_statement(db)
    added = 0
    while added < missing:
        size = min(BATCH, missing - added)
        batch = rows(branch, branch.layout.take(size), codes)
        # The driver's executemany writes multi-row INSERT ... VALUES statements; the values
        # go through the columns' own bind processors (RawStatement), as the ORM would send
        # them, without its per-row bookkeeping (a third of the time). As a dump is loaded,
        # the rows are built to fit (existing parents, distinct references), so the per-row
        # foreign-key and unique lookups are skipped.
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql(LOAD_CHECKS.format(value=0))
            await conn.exec_driver_sql(insert.sql, [insert.arguments(row) for row in batch])
            await conn.exec_driver_sql(LOAD_CHECKS.format(value=1))
        added += size
    return added


def _insert_statement(db: Database) -> RawStatement:
    table = Appointment.metadata.tables["appointments"]
    values = {name: sa.bindparam(name, type_=table.c[name].type) for name in ROW_COLUMNS}
    return RawStatement(sa.insert(table).values(values), db.engine.dialect)
