"""The agent paths with two companies on one database (issue 13, item 2; guarantee 4).

Both salons have the same service and staff names, and one caller is a customer of both, so a
lookup that crossed tenants (by name, by phone, by "the first company in the table") would show
up as the other company's name, staff, appointments, time zone or booking rules. Every call is
signed, carries a caller id and names the function of its path.

Regression: the inbound greeting named the first company in the table for every caller (the
booking service read `select(Company)` unfiltered); it names the caller's own company and
branch for both tenants here, whichever of them sorts first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking.agent import speech
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.models import Appointment
from tests.support.db_snapshot import company_snapshot, snapshot_engine
from tests.support.factories import next_weekday
from tests.support.two_tenants import Tenant, agent_call, greeting, new_caller, two_tenants

SERVICE = "Herrenhaarschnitt"
Snapper = tuple[AsyncEngine, list[sa.Table]]


@pytest.fixture
async def tenants(db: Database) -> tuple[Tenant, Tenant]:
    return await two_tenants(db)


@pytest.fixture(scope="module")
async def snapper(database_url: str) -> AsyncIterator[Snapper]:
    async with snapshot_engine(database_url) as engine_and_tables:
        yield engine_and_tables


def book_args(day: date, at: str, name: str, staff: str = "Anna") -> dict[str, Any]:
    return {
        "service": SERVICE,
        "date": day.isoformat(),
        "time": at,
        "customer_name": name,
        "staff": staff,
    }


async def stored(db: Database, appointment_id: str) -> Appointment:
    async with db.transaction(SYSTEM, write=False) as session:
        row = await session.get(Appointment, appointment_id)
        assert row is not None
        return row


def slot_staff(answer: dict[str, Any]) -> set[str]:
    return {slot["staff_id"] for slot in answer["slots"]}


def working_day(days_ahead: int) -> date:
    """Today + `days_ahead`, or the Saturday before when that is a Sunday (the salons work
    Monday-Saturday): never later than asked, so a day inside a notice period stays inside."""
    day = date.today() + timedelta(days=days_ahead)
    return day if day.weekday() != 6 else day - timedelta(days=1)


def spoken(day: date, hour: int, zone: str) -> str:
    return speech.spoken_datetime(datetime.combine(day, time(hour), ZoneInfo(zone)), ZoneInfo(zone))


async def test_inbound_greeting_names_each_callers_own_company_and_branch(
    booking: httpx.AsyncClient, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    caller = new_caller()
    day = next_weekday(2, at_least_days=7)
    in_a = await agent_call(
        booking,
        "book_appointment",
        book_args(day, "14:00", "Erika Aal"),
        caller=caller,
        to_number=a.number,
    )
    in_b = await agent_call(
        booking,
        "book_appointment",
        book_args(day, "10:00", "Erika Berg"),
        caller=caller,
        to_number=b.number,
    )
    assert (in_a["status"], in_b["status"]) == ("booked", "booked"), (in_a, in_b)

    to_a = await greeting(booking, caller=caller, to_number=a.number)
    assert to_a["company_name"] == a.name
    assert to_a["branch_name"] == "Mitte"
    assert (to_a["customer_name"], to_a["customer_known"]) == ("Erika Aal", "true")
    assert to_a["next_appointment"] == f"{SERVICE} am {spoken(day, 14, a.timezone)}"

    to_b = await greeting(booking, caller=caller, to_number=b.number)
    assert to_b["company_name"] == b.name != a.name
    assert to_b["branch_name"] == "Altstadt"
    assert (to_b["customer_name"], to_b["customer_known"]) == ("Erika Berg", "true")
    assert to_b["next_appointment"] == f"{SERVICE} am {spoken(day, 10, b.timezone)}"

    hotline = await greeting(booking, caller=caller, to_number=b.hotline)
    assert (hotline["company_name"], hotline["branch_name"]) == (b.name, "")
    assert hotline["customer_name"] == "Erika Berg"
    assert hotline["next_appointment"] == f"{SERVICE} am {spoken(day, 10, b.timezone)}"

    assert a.agent_id is not None
    by_agent = await greeting(booking, caller=caller, to_number=None, agent_id=a.agent_id)
    assert (by_agent["company_name"], by_agent["branch_name"]) == (a.name, "Mitte")
    assert by_agent["customer_name"] == "Erika Aal"

    stranger = await greeting(booking, caller=new_caller(), to_number=b.number)
    assert {k: stranger[k] for k in ("company_name", "branch_name", "customer_known")} == {
        "company_name": b.name,
        "branch_name": "Altstadt",
        "customer_known": "false",
    }
    assert (stranger["customer_name"], stranger["next_appointment"]) == ("", "")


async def test_availability_uses_each_companys_own_notice_window_and_zone(
    booking: httpx.AsyncClient, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    caller = new_caller()

    async def check(tenant: Tenant, day: date) -> dict[str, Any]:
        args = {"service": SERVICE, "date": day.isoformat()}
        return await agent_call(
            booking, "check_availability", args, caller=caller, to_number=tenant.number
        )

    both = next_weekday(2, at_least_days=7)
    for tenant in (a, b):
        answer = await check(tenant, both)
        assert answer["status"] == "available", answer
        assert answer["slots"][0]["start"] == tenant.local(both, 9)
        assert answer["slots"][0]["staff"] == "Anna"
        assert slot_staff(answer) <= set(tenant.salon.staff_ids)

    soon = working_day(2)  # inside B's 3 days of notice, well outside A's 2 hours
    assert (await check(a, soon))["status"] == "available"
    too_soon = await check(b, soon)
    assert (too_soon["status"], too_soon["slots"]) == ("unavailable", [])

    far = working_day(30)  # beyond B's 21-day window, inside A's 60 days
    assert (await check(a, far))["status"] == "available"
    too_far = await check(b, far)
    assert (too_far["status"], too_far["slots"]) == ("unavailable", [])


async def test_a_caller_of_b_never_sees_or_touches_as_appointments(
    booking: httpx.AsyncClient, db: Database, tenants: tuple[Tenant, Tenant], snapper: Snapper
) -> None:
    a, b = tenants
    caller = new_caller()
    day = next_weekday(2, at_least_days=7)

    async def as_b(name: str, args: dict[str, Any]) -> dict[str, Any]:
        return await agent_call(booking, name, args, caller=caller, to_number=b.number)

    in_a = await agent_call(
        booking,
        "book_appointment",
        book_args(day, "11:00", "Erika Aal"),
        caller=caller,
        to_number=a.number,
    )
    assert in_a["status"] == "booked", in_a
    a_before = await company_snapshot(*snapper, a.company_id)

    # B's "Anna" is free at 11:00 (only A's Anna is booked): booked with B's own staff.
    in_b = await as_b("book_appointment", book_args(day, "11:00", "Erika Berg"))
    assert in_b["status"] == "booked", in_b
    assert (in_b["start"], in_b["staff"]) == (b.local(day, 11), "Anna")
    row = await stored(db, in_b["appointment_id"])
    assert (row.company_id, row.staff_id) == (b.company_id, b.salon.staff_ids[0])

    listed = await as_b("list_appointments", {})
    assert [item["appointment_id"] for item in listed["appointments"]] == [in_b["appointment_id"]]

    by_id = {"appointment_id": in_a["appointment_id"]}
    assert (await as_b("cancel_appointment", by_id))["status"] == "not_found"
    moved = {**by_id, "new_date": day.isoformat(), "new_time": "16:00"}
    assert (await as_b("reschedule_appointment", moved))["status"] == "not_found"
    # A's appointment is at 11:00 Berlin = 10:00 London, when B's caller has nothing.
    by_time = {"date": day.isoformat(), "time": "10:00"}
    assert (await as_b("cancel_appointment", by_time))["status"] == "not_found"
    assert (await stored(db, in_a["appointment_id"])).status == "confirmed"

    own = await as_b(
        "reschedule_appointment",
        {
            "appointment_id": in_b["appointment_id"],
            "new_date": day.isoformat(),
            "new_time": "16:00",
        },
    )
    assert (own["status"], own["start"]) == ("rescheduled", b.local(day, 16)), own

    from_a = await agent_call(booking, "list_appointments", {}, caller=caller, to_number=a.number)
    assert [(i["appointment_id"], i["start"], i["status"]) for i in from_a["appointments"]] == [
        (in_a["appointment_id"], a.local(day, 11), "confirmed")
    ]
    assert await company_snapshot(*snapper, a.company_id) == a_before


async def test_hotline_and_agent_id_route_to_their_own_company(
    booking: httpx.AsyncClient, db: Database, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    assert a.agent_id is not None and b.hotline is not None
    caller = new_caller()
    day = next_weekday(3, at_least_days=7)
    check = {"service": SERVICE, "date": day.isoformat()}

    via_hotline = await agent_call(
        booking, "check_availability", check, caller=caller, to_number=b.hotline
    )
    assert via_hotline["status"] == "available", via_hotline
    assert via_hotline["slots"][0]["start"] == b.local(day, 9)
    assert slot_staff(via_hotline) <= set(b.salon.staff_ids)
    booked_b = await agent_call(
        booking,
        "book_appointment",
        book_args(day, "10:00", "Hanna Hotline"),
        caller=caller,
        to_number=b.hotline,
    )
    assert (booked_b["status"], booked_b["start"]) == ("booked", b.local(day, 10)), booked_b
    row = await stored(db, booked_b["appointment_id"])
    assert row.company_id == b.company_id
    assert row.starts_at == datetime.combine(day, time(10), ZoneInfo(b.timezone))

    agent_id = a.agent_id  # a web call: no called number, routed by the agent id alone

    async def web(name: str, args: dict[str, Any]) -> dict[str, Any]:
        return await agent_call(
            booking, name, args, caller=caller, to_number=None, agent_id=agent_id
        )

    via_agent = await web("check_availability", check)
    assert via_agent["slots"][0]["start"] == a.local(day, 9)
    assert slot_staff(via_agent) <= set(a.salon.staff_ids)
    booked_a = await web("book_appointment", book_args(day, "10:00", "Hanna Agent"))
    assert (booked_a["status"], booked_a["start"]) == ("booked", a.local(day, 10)), booked_a
    assert (await stored(db, booked_a["appointment_id"])).company_id == a.company_id

    of_b = await agent_call(booking, "list_appointments", {}, caller=caller, to_number=b.number)
    assert [i["appointment_id"] for i in of_b["appointments"]] == [booked_b["appointment_id"]]
    of_a = await agent_call(booking, "list_appointments", {}, caller=caller, to_number=a.number)
    assert [i["appointment_id"] for i in of_a["appointments"]] == [booked_a["appointment_id"]]
