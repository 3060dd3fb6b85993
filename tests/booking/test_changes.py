"""Cancel and reschedule over REST: the policy service decides (over HTTP), the change is applied
atomically with its audit row, its stats counter and its outbox rows, or nothing changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import event, select

from services.booking.appointments.policy_client import PolicyClient
from shared.db.engine import Database
from shared.models import (
    Appointment,
    AppointmentModification,
    AppointmentModificationStat,
    OutboxEvent,
)
from tests.booking.test_booking_api import at, body
from tests.conftest import Services
from tests.support.factories import Salon, create_salon, create_tenant, next_weekday

BERLIN = ZoneInfo("Europe/Berlin")
UTC_ZONE = ZoneInfo("UTC")
PHONE = "+491701234567"
OTHER_PHONE = "+491709876543"


def soon_day() -> date:
    """A working day (Mon-Sat) 2-3 days ahead: 10:00 there is 34-82 h away, inside 96 h."""
    day = date.today() + timedelta(days=2)
    return day + timedelta(days=1) if day.weekday() == 6 else day


def utc(local_iso: str) -> datetime:
    return datetime.fromisoformat(local_iso).astimezone(UTC_ZONE)


@dataclass
class Snapshot:
    appointment: Appointment
    modifications: list[AppointmentModification]
    stats: list[AppointmentModificationStat]
    outbox_events: list[str]


async def snapshot(db: Database, salon: Salon, appointment_id: str) -> Snapshot:
    async with db.transaction(salon.tenant.company_id, write=False) as session:
        appointment = await session.get(Appointment, appointment_id)
        assert appointment is not None
        modifications = list(
            await session.scalars(
                select(AppointmentModification)
                .where(AppointmentModification.appointment_id == appointment_id)
                .order_by(AppointmentModification.created_at)
            )
        )
        stats = list(
            await session.scalars(
                select(AppointmentModificationStat).where(
                    AppointmentModificationStat.customer_id == appointment.customer_id
                )
            )
        )
        outbox = list(
            await session.scalars(
                select(OutboxEvent)
                .where(
                    OutboxEvent.company_id == salon.tenant.company_id,
                    OutboxEvent.aggregate_id == appointment_id,
                )
                .order_by(OutboxEvent.created_at, OutboxEvent.job_name)
            )
        )
    events = sorted(f"{row.payload['event_type']}:{row.job_name}" for row in outbox)
    return Snapshot(appointment, modifications, stats, events)


async def book(
    booking: httpx.AsyncClient, salon: Salon, start: str, phone: str = PHONE, staff: int = 0
) -> dict[str, Any]:
    response = await booking.post(
        "/v1/appointments", json=body(salon, start, staff=staff, phone=phone), headers=salon.headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def put_policy(
    services: Services, salon: Salon, policy_type: str, config: dict[str, Any]
) -> None:
    response = await services.clients["policy"].put(
        f"/v1/policies/company/{salon.tenant.company_id}/{policy_type}",
        json=config,
        headers=salon.headers,
    )
    assert response.status_code in (200, 201), response.text


async def cancel(
    booking: httpx.AsyncClient, salon: Salon, appointment_id: str, reason: str | None = None
) -> httpx.Response:
    payload = {} if reason is None else {"reason": reason}
    return await booking.post(
        f"/v1/appointments/{appointment_id}/cancel", json=payload, headers=salon.headers
    )


async def reschedule(
    booking: httpx.AsyncClient, salon: Salon, appointment_id: str, start: str
) -> httpx.Response:
    return await booking.post(
        f"/v1/appointments/{appointment_id}/reschedule",
        json={"start": start},
        headers=salon.headers,
    )


@contextmanager
def appointment_writes(services: Services) -> Iterator[list[str]]:
    """The INSERT/UPDATE/DELETE statements on `appointments` that the booking app sends."""
    engine = services.apps["booking"].state.db.engine.sync_engine
    seen: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        words = statement.split()
        verb = words[0].upper()
        if verb in ("INSERT", "UPDATE", "DELETE"):
            table = words[2] if verb in ("INSERT", "DELETE") else words[1]
            if table.strip('`"').lower() == "appointments":
                seen.append(verb)

    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listen)


@asynccontextmanager
async def unreachable_policy(services: Services) -> AsyncIterator[None]:
    """Booking's policy client points at a port nobody listens on (restored afterwards)."""
    app = services.apps["booking"]
    original = app.state.policy
    dead = PolicyClient("http://127.0.0.1:1", original.service_key, 0.5)
    app.state.policy = dead
    try:
        yield
    finally:
        app.state.policy = original
        await dead.aclose()


def assert_untouched(before: Snapshot, after: Snapshot) -> None:
    assert after.appointment.status == before.appointment.status == "confirmed"
    assert after.appointment.starts_at == before.appointment.starts_at
    assert after.appointment.version == before.appointment.version
    assert [m.id for m in after.modifications] == [m.id for m in before.modifications]
    assert [(s.stat_type, s.count) for s in after.stats] == [
        (s.stat_type, s.count) for s in before.stats
    ]
    assert after.outbox_events == before.outbox_events


# --- cancel ---------------------------------------------------------------------------------


async def test_cancel_under_default_policy_is_free_and_fully_recorded(
    services: Services, db: Database
) -> None:
    booking = services.clients["booking"]
    salon = await create_salon(db)
    day = next_weekday(1)  # >= 3 days ahead: long before the default 24 h deadline
    created = await book(booking, salon, at(day, 10))
    response = await cancel(booking, salon, created["id"], reason="Krank")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "cancelled",
        "appointment_id": created["id"],
        "fee": "0.00",
        "currency": "EUR",
    }
    fetched = await booking.get(f"/v1/appointments/{created['id']}", headers=salon.headers)
    assert fetched.json()["status"] == "cancelled"
    assert fetched.json()["start"] == at(day, 10)

    state = await snapshot(db, salon, created["id"])
    assert state.appointment.cancellation_reason == "Krank"
    assert state.appointment.cancelled_at is not None
    assert len(state.modifications) == 1
    mod = state.modifications[0]
    assert (mod.modification_type, mod.actor) == ("cancel", "api")
    assert mod.old_starts_at == utc(at(day, 10))
    assert mod.new_starts_at is None
    assert (mod.fee, mod.currency, mod.within_policy) == (Decimal("0.00"), "EUR", True)
    assert mod.customer_id == created["customer_id"]
    assert mod.reason == "Krank"
    assert [(s.stat_type, s.count) for s in state.stats] == [("cancellation_count", 1)]
    assert state.outbox_events == [
        "booking_cancelled:notify",
        "booking_cancelled:sync_appointment",
        "booking_confirmed:notify",
        "booking_confirmed:sync_appointment",
    ]

    # The freed slot can be booked by someone else (same staff member, same start).
    again = await book(booking, salon, at(day, 10), phone=OTHER_PHONE)
    assert again["id"] != created["id"]
    assert again["staff_id"] == salon.staff_ids[0]


async def test_cancel_after_deadline_with_allow_late_charges_the_tier_fee(
    services: Services, db: Database
) -> None:
    booking = services.clients["booking"]
    salon = await create_salon(db)
    await put_policy(
        services,
        salon,
        "cancellation",
        {
            "hours_before": 96,
            "allow_late": True,
            "fee_tiers": [{"min_hours_before": 0, "fee_percent": 50}],
        },
    )
    day = soon_day()
    created = await book(booking, salon, at(day, 10))
    unaccepted = await cancel(booking, salon, created["id"])
    assert (unaccepted.status_code, unaccepted.json()["code"]) == (409, "fee_required")
    response = await booking.post(
        f"/v1/appointments/{created['id']}/cancel", json={"accept_fee": True}, headers=salon.headers
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "cancelled",
        "appointment_id": created["id"],
        "fee": "14.00",  # 50 % of 28.00
        "currency": "EUR",
    }
    state = await snapshot(db, salon, created["id"])
    assert state.appointment.status == "cancelled"
    assert [(m.modification_type, m.fee, m.within_policy) for m in state.modifications] == [
        ("cancel", Decimal("14.00"), False)
    ]
    assert [(s.stat_type, s.count) for s in state.stats] == [("cancellation_count", 1)]


async def test_cancel_after_deadline_without_allow_late_is_refused_and_changes_nothing(
    services: Services, db: Database
) -> None:
    booking = services.clients["booking"]
    salon = await create_salon(db)
    await put_policy(
        services,
        salon,
        "cancellation",
        {
            "hours_before": 96,
            "allow_late": False,
            "fee_tiers": [{"min_hours_before": 0, "fee_percent": 50}],
        },
    )
    day = soon_day()
    created = await book(booking, salon, at(day, 10))
    before = await snapshot(db, salon, created["id"])
    response = await cancel(booking, salon, created["id"])
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "policy_violation"
    assert problem["reason"] == "deadline_passed"
    deadline = datetime.fromisoformat(problem["deadline"])
    assert deadline == utc(at(day, 10)) - timedelta(hours=96)
    after = await snapshot(db, salon, created["id"])
    assert_untouched(before, after)
    assert after.modifications == [] and after.stats == []


async def test_cancelling_twice_is_refused_not_modifiable(services: Services, db: Database) -> None:
    booking = services.clients["booking"]
    salon = await create_salon(db)
    created = await book(booking, salon, at(next_weekday(2), 11))
    assert (await cancel(booking, salon, created["id"])).status_code == 200
    second = await cancel(booking, salon, created["id"])
    assert second.status_code == 409, second.text
    assert second.json()["code"] == "policy_violation"
    assert second.json()["reason"] == "not_modifiable"
    state = await snapshot(db, salon, created["id"])
    assert len(state.modifications) == 1
    assert [(s.stat_type, s.count) for s in state.stats] == [("cancellation_count", 1)]


async def test_simultaneous_cancels_of_one_appointment_apply_once(
    services: Services, db: Database
) -> None:
    booking = services.clients["booking"]
    salon = await create_salon(db)
    created = await book(booking, salon, at(next_weekday(2), 15))
    responses = await asyncio.gather(*(cancel(booking, salon, created["id"]) for _ in range(4)))
    assert sorted(r.status_code for r in responses) == [200, 409, 409, 409]
    for response in responses:
        if response.status_code == 409:
            # Lost the compare-and-set (MariaDB), or saw it cancelled already (SQLite).
            problem = response.json()
            assert problem["code"] in ("conflict", "policy_violation"), problem
            assert problem.get("reason", "not_modifiable") == "not_modifiable", problem
    state = await snapshot(db, salon, created["id"])
    assert state.appointment.status == "cancelled"
    assert len(state.modifications) == 1
    assert [(s.stat_type, s.count) for s in state.stats] == [("cancellation_count", 1)]


async def test_cancel_unknown_or_foreign_appointment_is_404(
    services: Services, db: Database
) -> None:
    booking = services.clients["booking"]
    salon = await create_salon(db)
    other = await create_salon(db)
    foreign = await book(booking, other, at(next_weekday(3), 9))
    for appointment_id in ("does-not-exist", foreign["id"]):
        for response in (
            await cancel(booking, salon, appointment_id),
            await reschedule(booking, salon, appointment_id, at(next_weekday(3), 14)),
        ):
            assert response.status_code == 404, response.text
            assert response.json()["code"] == "not_found"
    state = await snapshot(db, other, foreign["id"])
    assert state.appointment.status == "confirmed"
    assert state.modifications == []
    # A tenant without any salon data gets the same answer.
    bare = await create_tenant(db)
    response = await booking.post(
        f"/v1/appointments/{foreign['id']}/cancel", json={}, headers=bare.headers
    )
    assert response.status_code == 404


# --- reschedule -----------------------------------------------------------------------------


async def test_reschedule_to_a_free_time_moves_in_one_update(
    services: Services, db: Database
) -> None:
    booking = services.clients["booking"]
    salon = await create_salon(db)
    day = next_weekday(1)
    created = await book(booking, salon, at(day, 10))
    with appointment_writes(services) as writes:
        response = await reschedule(booking, salon, created["id"], at(day, 14, 30))
    assert response.status_code == 200, response.text
    moved = response.json()
    assert moved["id"] == created["id"]
    assert moved["start"] == at(day, 14, 30)
    assert moved["end"] == at(day, 15)
    assert moved["staff_id"] == salon.staff_ids[0]
    assert moved["status"] == "confirmed"
    assert moved["fee"] == "0.00"
    assert writes == ["UPDATE"]  # one UPDATE of the same row; no insert, no delete

    state = await snapshot(db, salon, created["id"])
    assert state.appointment.starts_at == utc(at(day, 14, 30))
    assert state.appointment.version == 2
    assert [
        (m.modification_type, m.actor, m.old_starts_at, m.new_starts_at, m.fee)
        for m in state.modifications
    ] == [("reschedule", "api", utc(at(day, 10)), utc(at(day, 14, 30)), Decimal("0.00"))]
    assert [(s.stat_type, s.count) for s in state.stats] == [("reschedule_count", 1)]
    assert "booking_rescheduled:sync_appointment" in state.outbox_events
    assert "booking_rescheduled:notify" in state.outbox_events

    # The old time is free again for someone else; the new one is taken.
    await book(booking, salon, at(day, 10), phone=OTHER_PHONE)
    clash = await booking.post(
        "/v1/appointments",
        json=body(salon, at(day, 14, 30), phone="+491705550000"),
        headers=salon.headers,
    )
    assert clash.status_code == 409
    assert clash.json()["code"] == "slot_taken"


async def test_reschedule_within_its_own_time_is_allowed(services: Services, db: Database) -> None:
    """The fence excludes the appointment itself: 10:00 -> 10:15 overlaps only its old self."""
    booking = services.clients["booking"]
    salon = await create_salon(db)
    day = next_weekday(2)
    created = await book(booking, salon, at(day, 10))
    response = await reschedule(booking, salon, created["id"], at(day, 10, 15))
    assert response.status_code == 200, response.text
    assert response.json()["start"] == at(day, 10, 15)


async def test_reschedule_to_a_taken_time_is_409_with_alternatives_and_changes_nothing(
    services: Services, db: Database
) -> None:
    booking = services.clients["booking"]
    salon = await create_salon(db)
    day = next_weekday(1)
    mine = await book(booking, salon, at(day, 10))
    await book(booking, salon, at(day, 11), phone=OTHER_PHONE)
    before = await snapshot(db, salon, mine["id"])
    response = await reschedule(booking, salon, mine["id"], at(day, 11))
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "slot_taken"
    # Anna's free starts nearest 11:00: 11:00-11:40 is blocked (buffer included); the
    # appointment being moved does not count against itself, so 10:15 (ends 10:55 with its
    # buffer) and 10:00 are offered: 10:15 and 11:45 are 45 min away (earlier first), 10:00 60.
    assert [a["start"] for a in problem["alternatives"]] == [
        at(day, 10, 15),
        at(day, 11, 45),
        at(day, 10),
    ]
    assert {a["staff_id"] for a in problem["alternatives"]} == {salon.staff_ids[0]}
    assert_untouched(before, await snapshot(db, salon, mine["id"]))


async def test_reschedule_outside_working_hours_is_422_on_start(
    services: Services, db: Database
) -> None:
    booking = services.clients["booking"]
    salon = await create_salon(db)
    day = next_weekday(1)
    created = await book(booking, salon, at(day, 10))
    before = await snapshot(db, salon, created["id"])
    for start in (
        at(day, 12, 45),  # lunch break
        at(day, 18),  # after closing
        at(next_weekday(6), 10),  # Sunday
        at(day, 10, 5),  # off the 15-minute grid
        "2020-01-01T10:00:00+01:00",  # past
    ):
        response = await reschedule(booking, salon, created["id"], start)
        assert response.status_code == 422, (start, response.text)
        assert response.json()["field"] == "start", response.json()
    assert_untouched(before, await snapshot(db, salon, created["id"]))


async def test_second_reschedule_over_max_per_appointment_is_refused(
    services: Services, db: Database
) -> None:
    booking = services.clients["booking"]
    salon = await create_salon(db)
    await put_policy(services, salon, "reschedule", {"max_per_appointment": 1})
    day = next_weekday(1)
    created = await book(booking, salon, at(day, 10))
    first = await reschedule(booking, salon, created["id"], at(day, 11))
    assert first.status_code == 200, first.text
    before = await snapshot(db, salon, created["id"])
    second = await reschedule(booking, salon, created["id"], at(day, 15))
    assert second.status_code == 409, second.text
    assert second.json()["code"] == "policy_violation"
    assert second.json()["reason"] == "max_reschedules_reached"
    after = await snapshot(db, salon, created["id"])
    assert after.appointment.starts_at == utc(at(day, 11))
    assert after.appointment.version == before.appointment.version
    assert len(after.modifications) == 1
    assert [(s.stat_type, s.count) for s in after.stats] == [("reschedule_count", 1)]


async def test_reschedule_of_a_cancelled_appointment_is_refused(
    services: Services, db: Database
) -> None:
    booking = services.clients["booking"]
    salon = await create_salon(db)
    day = next_weekday(4)
    created = await book(booking, salon, at(day, 9))
    assert (await cancel(booking, salon, created["id"])).status_code == 200
    response = await reschedule(booking, salon, created["id"], at(day, 15))
    assert response.status_code == 409, response.text
    assert response.json()["reason"] == "not_modifiable"
    state = await snapshot(db, salon, created["id"])
    assert state.appointment.starts_at == utc(at(day, 9))
    assert [m.modification_type for m in state.modifications] == ["cancel"]


# --- no decision, no change -----------------------------------------------------------------


async def test_policy_service_unreachable_is_503_and_changes_nothing(
    services: Services, db: Database
) -> None:
    booking = services.clients["booking"]
    salon = await create_salon(db)
    day = next_weekday(2)
    created = await book(booking, salon, at(day, 10))
    before = await snapshot(db, salon, created["id"])
    async with unreachable_policy(services):
        responses = [
            await cancel(booking, salon, created["id"]),
            await reschedule(booking, salon, created["id"], at(day, 15)),
        ]
    for response in responses:
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "policy_unavailable"
        assert problem["status"] == 503
    assert_untouched(before, await snapshot(db, salon, created["id"]))
    # With the policy service back, the same cancellation goes through.
    assert (await cancel(booking, salon, created["id"])).status_code == 200
