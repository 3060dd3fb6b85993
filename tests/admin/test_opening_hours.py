"""Branch opening hours, closed days and the public-holiday import (admin API), on both
databases: round trips, refusals that name the field and change nothing, the staff-hours
rule in both directions, and two tenants."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import httpx
from sqlalchemy import func, select

from shared.db.engine import Database
from shared.db.types import utcnow
from shared.models import BranchClosedDay, BranchOpeningHours, WorkingHours
from tests.admin.support import assert_problem
from tests.support.factories import Salon, create_salon

MON_SAT = [{"weekday": wd, "start": "09:00", "end": "18:00"} for wd in range(6)]


def path(salon: Salon, tail: str) -> str:
    return f"/v1/admin/branches/{salon.branch_id}/{tail}"


async def put_hours(
    booking: httpx.AsyncClient, salon: Salon, hours: list[dict[str, Any]]
) -> httpx.Response:
    return await booking.put(
        path(salon, "opening-hours"), json={"hours": hours}, headers=salon.headers
    )


async def get_hours(booking: httpx.AsyncClient, salon: Salon) -> dict[str, Any]:
    response = await booking.get(path(salon, "opening-hours"), headers=salon.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def closed_days(booking: httpx.AsyncClient, salon: Salon, **params: Any) -> dict[str, Any]:
    response = await booking.get(path(salon, "closed-days"), params=params, headers=salon.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def count(db: Database, salon: Salon, model: type) -> int:
    async with db.transaction(salon.tenant.company_id, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def berlin_today() -> date:
    return utcnow().astimezone(ZoneInfo("Europe/Berlin")).date()


# Opening hours -------------------------------------------------------------------------


async def test_opening_hours_round_trip_with_weekday_names(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    assert await get_hours(booking, salon) == {
        "branch_id": salon.branch_id,
        "timezone": "Europe/Berlin",
        "items": [],
        "next_cursor": None,
    }
    week = [
        {"weekday": "saturday", "start": "08:30", "end": "18:00"},
        {"weekday": "TUE", "start": "13:00", "end": "18:00"},
        {"weekday": "tuesday", "start": "09:00", "end": "12:30"},
        *({"weekday": wd, "start": "09:00", "end": "18:00"} for wd in (0, 2, 3, 4)),
    ]
    response = await put_hours(booking, salon, week)
    assert response.status_code == 200, response.text
    expected = [
        {"weekday": 0, "weekday_name": "monday", "start": "09:00", "end": "18:00"},
        {"weekday": 1, "weekday_name": "tuesday", "start": "09:00", "end": "12:30"},
        {"weekday": 1, "weekday_name": "tuesday", "start": "13:00", "end": "18:00"},
        {"weekday": 2, "weekday_name": "wednesday", "start": "09:00", "end": "18:00"},
        {"weekday": 3, "weekday_name": "thursday", "start": "09:00", "end": "18:00"},
        {"weekday": 4, "weekday_name": "friday", "start": "09:00", "end": "18:00"},
        {"weekday": 5, "weekday_name": "saturday", "start": "08:30", "end": "18:00"},
    ]
    assert response.json()["items"] == expected
    assert (await get_hours(booking, salon))["items"] == expected
    # Replacing the week replaces it; an empty list removes the opening hours.
    assert (await put_hours(booking, salon, MON_SAT)).status_code == 200
    assert len((await get_hours(booking, salon))["items"]) == 6
    assert (await put_hours(booking, salon, [])).json()["items"] == []
    assert await count(db, salon, BranchOpeningHours) == 0


async def test_overlaps_bad_times_and_bad_weekdays_are_refused_and_change_nothing(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    assert (await put_hours(booking, salon, MON_SAT)).status_code == 200
    cases = [
        (
            [
                {"weekday": 0, "start": "09:00", "end": "13:00"},
                {"weekday": "monday", "start": "12:00", "end": "18:00"},
            ],
            "hours.1.start",
        ),
        ([{"weekday": 0, "start": "18:00", "end": "09:00"}], "hours.0.end"),
        ([{"weekday": 0, "start": "09:00", "end": "09:00"}], "hours.0.end"),
        ([{"weekday": "funday", "start": "09:00", "end": "18:00"}], "hours.0.weekday"),
        ([{"weekday": 7, "start": "09:00", "end": "18:00"}], "hours.0.weekday"),
        ([{"weekday": 0, "start": "9 Uhr", "end": "18:00"}], "hours.0.start"),
    ]
    for hours, field in cases:
        assert_problem(await put_hours(booking, salon, hours), 422, "validation_error", field)
    assert (await get_hours(booking, salon))["items"][0]["start"] == "09:00"
    assert await count(db, salon, BranchOpeningHours) == 6


async def test_opening_hours_that_staff_hours_exceed_are_refused(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)  # Anna and Ben: Mon-Sat 09:00-12:30, 13:00-18:00
    narrower = [{"weekday": wd, "start": "10:00", "end": "18:00"} for wd in range(6)]
    response = await put_hours(booking, salon, narrower)
    assert_problem(response, 422, "staff_hours_outside_opening_hours", "hours")
    listed = response.json()["staff_hours"]
    assert len(listed) == 12  # two staff members x six mornings
    assert listed[0] == {
        "staff": "Anna",
        "weekday": 0,
        "weekday_name": "monday",
        "start": "09:00",
        "end": "12:30",
    }
    assert {(item["staff"], item["start"]) for item in listed} == {
        ("Anna", "09:00"),
        ("Ben", "09:00"),
    }
    assert "Anna monday 09:00-12:30" in response.json()["detail"]
    # Saturday missing entirely: the Saturday hours would lie outside too.
    response = await put_hours(booking, salon, MON_SAT[:5])
    assert_problem(response, 422, "staff_hours_outside_opening_hours", "hours")
    assert {item["weekday_name"] for item in response.json()["staff_hours"]} == {"saturday"}
    assert await count(db, salon, BranchOpeningHours) == 0


async def test_staff_hours_outside_the_opening_hours_are_refused(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    assert (await put_hours(booking, salon, MON_SAT)).status_code == 200
    created = await booking.post(
        "/v1/admin/staff",
        json={"name": "Cem", "branch_id": salon.branch_id},
        headers=salon.headers,
    )
    staff_id = created.json()["id"]
    before = await count(db, salon, WorkingHours)

    def hours(weekday: int | str, start: str, end: str) -> dict[str, Any]:
        return {"staff_id": staff_id, "weekday": weekday, "start_time": start, "end_time": end}

    late = await booking.post(
        "/v1/admin/working-hours", json=hours("monday", "17:00", "19:00"), headers=salon.headers
    )
    assert_problem(late, 422, "outside_opening_hours", "end_time")
    assert late.json()["opening_hours"] == [{"start": "09:00", "end": "18:00"}]
    assert late.json()["weekday_name"] == "monday"
    early = await booking.post(
        "/v1/admin/working-hours", json=hours(2, "08:00", "12:00"), headers=salon.headers
    )
    assert_problem(early, 422, "outside_opening_hours", "start_time")
    sunday = await booking.post(
        "/v1/admin/working-hours", json=hours("sun", "10:00", "12:00"), headers=salon.headers
    )
    assert_problem(sunday, 422, "outside_opening_hours", "start_time")
    assert sunday.json()["opening_hours"] == []
    assert "closed" in sunday.json()["detail"]
    assert await count(db, salon, WorkingHours) == before

    inside = await booking.post(
        "/v1/admin/working-hours", json=hours("monday", "10:00", "18:00"), headers=salon.headers
    )
    assert inside.status_code == 201, inside.text
    moved = await booking.patch(
        f"/v1/admin/working-hours/{inside.json()['id']}",
        json={"end_time": "18:30"},
        headers=salon.headers,
    )
    assert_problem(moved, 422, "outside_opening_hours", "end_time")
    again = await booking.get(
        f"/v1/admin/working-hours/{inside.json()['id']}", headers=salon.headers
    )
    assert again.json()["end_time"] == "18:00"
    # Without opening hours there is no constraint, as before.
    assert (await put_hours(booking, salon, [])).status_code == 200
    response = await booking.post(
        "/v1/admin/working-hours", json=hours("sunday", "10:00", "12:00"), headers=salon.headers
    )
    assert response.status_code == 201, response.text


# Closed days ---------------------------------------------------------------------------


async def test_closed_days_add_list_page_and_delete(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    days = ["2030-12-24", "2030-12-31", "2031-01-02"]
    for day in reversed(days):
        response = await booking.post(
            path(salon, "closed-days"), json={"day": day, "name": "Zu"}, headers=salon.headers
        )
        assert response.status_code == 201, response.text
        assert response.json()["source"] == "manual"
        assert response.json()["branch_id"] == salon.branch_id
    listed = await closed_days(booking, salon)
    assert [item["day"] for item in listed["items"]] == days
    assert listed["next_cursor"] is None
    assert [
        i["day"] for i in (await closed_days(booking, salon, to="2030-12-31"))["items"]
    ] == days[:2]
    assert [
        i["day"] for i in (await closed_days(booking, salon, **{"from": "2030-12-25"}))["items"]
    ] == days[1:]
    first = await closed_days(booking, salon, limit=2)
    assert [item["day"] for item in first["items"]] == days[:2]
    rest = await closed_days(booking, salon, limit=2, cursor=first["next_cursor"])
    assert [item["day"] for item in rest["items"]] == days[2:]
    assert rest["next_cursor"] is None
    bad_cursor = await booking.get(
        path(salon, "closed-days"), params={"cursor": "nope"}, headers=salon.headers
    )
    assert_problem(bad_cursor, 422, "validation_error", "cursor")

    duplicate = await booking.post(
        path(salon, "closed-days"), json={"day": days[0], "name": "Nochmal"}, headers=salon.headers
    )
    assert_problem(duplicate, 409, "conflict", "day")
    deleted = await booking.delete(path(salon, f"closed-days/{days[1]}"), headers=salon.headers)
    assert deleted.status_code == 204
    gone = await booking.delete(path(salon, f"closed-days/{days[1]}"), headers=salon.headers)
    assert_problem(gone, 404, "not_found")
    not_a_day = await booking.delete(path(salon, "closed-days/morgen"), headers=salon.headers)
    assert_problem(not_a_day, 422, "validation_error", "day")
    assert await count(db, salon, BranchClosedDay) == 2


async def test_a_closed_day_in_the_past_or_malformed_is_refused(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    yesterday = (berlin_today() - timedelta(days=1)).isoformat()
    cases = [
        ({"day": yesterday, "name": "Gestern"}, "day"),
        ({"day": "2020-01-01", "name": "Alt"}, "day"),
        ({"day": "2030-02-30", "name": "Nie"}, "day"),
        ({"day": "2030-12-24", "name": ""}, "name"),
        ({"day": "2030-12-24"}, "name"),
        ({"day": "2030-12-24", "name": "X", "source": "holidays"}, "source"),
    ]
    for body, field in cases:
        response = await booking.post(path(salon, "closed-days"), json=body, headers=salon.headers)
        assert_problem(response, 422, "validation_error", field)
    today = await booking.post(
        path(salon, "closed-days"),
        json={"day": berlin_today().isoformat(), "name": "Heute"},
        headers=salon.headers,
    )
    assert today.status_code == 201, today.text
    assert await count(db, salon, BranchClosedDay) == 1


# Holiday import ------------------------------------------------------------------------


async def _import(booking: httpx.AsyncClient, salon: Salon, **body: Any) -> httpx.Response:
    return await booking.post(path(salon, "closed-days/import"), json=body, headers=salon.headers)


async def test_bavarian_holidays_2027_import_exactly_and_once(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    expected = holidays.country_holidays("DE", subdiv="BY", years=2027)
    response = await _import(booking, salon, country="DE", subdivision="BY", year=2027)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["imported"], answer["skipped_existing"], answer["skipped_past"]) == (
        len(expected),
        0,
        0,
    )
    listed = (await closed_days(booking, salon, **{"from": "2027-01-01", "to": "2027-12-31"}))[
        "items"
    ]
    assert [item["day"] for item in listed] == sorted(day.isoformat() for day in expected)
    names = {item["day"]: item["name"] for item in listed}
    assert names["2027-01-06"] == "Heilige Drei Könige"
    assert names["2027-05-27"] == "Fronleichnam"
    assert names["2027-11-01"] == "Allerheiligen"
    # Mariä Himmelfahrt (08-15) is in the package's "catholic" category for Bavaria, not in
    # its public holidays: the import follows the package's default list.
    assert "2027-08-15" not in names
    assert {item["source"] for item in listed} == {"holidays"}

    again = (await _import(booking, salon, country="de", subdivision="by", year=2027)).json()
    assert (again["imported"], again["skipped_existing"], again["items"]) == (
        0,
        len(expected),
        [],
    )
    assert await count(db, salon, BranchClosedDay) == len(expected)


async def test_berlin_has_other_holidays_and_past_ones_are_skipped(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    answer = (await _import(booking, salon, country="DE", subdivision="BE", year=2027)).json()
    days = {item["day"] for item in answer["items"]}
    assert "2027-01-06" not in days
    assert "2027-03-08" in days  # Internationaler Frauentag, Berlin only
    assert answer["imported"] == 10

    today = berlin_today()
    this_year = holidays.country_holidays("DE", subdiv="BE", years=today.year)
    past = sum(1 for day in this_year if day < today)
    current = (
        await _import(booking, salon, country="DE", subdivision="BE", year=today.year)
    ).json()
    assert (current["imported"], current["skipped_past"]) == (len(this_year) - past, past)
    assert all(item["day"] >= today.isoformat() for item in current["items"])


async def test_bad_imports_name_the_field_and_store_nothing(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    last_year = berlin_today().year - 1
    cases = [
        ({"country": "XX", "year": 2027}, "country"),
        ({"country": "DE", "subdivision": "XY", "year": 2027}, "subdivision"),
        ({"country": "DE", "subdivision": "BY", "year": last_year}, "year"),
        ({"country": "DE", "subdivision": "BY", "year": 1800}, "year"),
        ({"country": "DE", "subdivision": "BY", "year": berlin_today().year + 50}, "year"),
        ({"country": "DE", "subdivision": "BY"}, "year"),
        ({"subdivision": "BY", "year": 2027}, "country"),
    ]
    for body, field in cases:
        assert_problem(await _import(booking, salon, **body), 422, "validation_error", field)
    assert await count(db, salon, BranchClosedDay) == 0


# Two tenants ---------------------------------------------------------------------------


async def test_another_company_cannot_read_or_change_a_branchs_hours_or_closed_days(
    booking: httpx.AsyncClient, db: Database
) -> None:
    a = await create_salon(db)
    b = await create_salon(db)
    assert (await put_hours(booking, a, MON_SAT)).status_code == 200
    await booking.post(
        path(a, "closed-days"), json={"day": "2030-12-24", "name": "Zu"}, headers=a.headers
    )
    attempts = [
        ("GET", "opening-hours", None),
        ("PUT", "opening-hours", {"hours": []}),
        ("GET", "closed-days", None),
        ("POST", "closed-days", {"day": "2030-12-31", "name": "B"}),
        ("DELETE", "closed-days/2030-12-24", None),
        ("POST", "closed-days/import", {"country": "DE", "subdivision": "BY", "year": 2027}),
    ]
    for method, tail, body in attempts:
        response = await booking.request(method, path(a, tail), json=body, headers=b.headers)
        assert_problem(response, 404, "not_found")
    assert len((await get_hours(booking, a))["items"]) == 6
    assert [i["day"] for i in (await closed_days(booking, a))["items"]] == ["2030-12-24"]
    assert await count(db, b, BranchOpeningHours) == 0
    assert await count(db, b, BranchClosedDay) == 0
