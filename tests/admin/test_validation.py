"""Refusals: 422 naming the field (and 409 for duplicates); a refused write changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.admin.support import ADMIN, Org, assert_problem, create, items, unique_phone

Body = Callable[[Org], dict[str, Any]]


def branch(**kw: Any) -> Body:
    return lambda org: {"name": "Neu", "timezone": "Europe/Berlin", **kw}


def service(**kw: Any) -> Body:
    return lambda org: {"name": "Neu", "duration_minutes": 30, "price": "10.00", **kw}


def staff(**kw: Any) -> Body:
    return lambda org: {"name": "Neu", "branch_id": org.branch["id"], **kw}


def hours(**kw: Any) -> Body:
    return lambda org: {
        "staff_id": org.staff["id"],
        "weekday": 2,
        "start_time": "09:00",
        "end_time": "17:00",
        **kw,
    }


def time_off(**kw: Any) -> Body:
    return lambda org: {
        "staff_id": org.staff["id"],
        "starts_at": "2030-03-01T09:00:00+01:00",
        "ends_at": "2030-03-01T12:00:00+01:00",
        **kw,
    }


CREATE_CASES: list[tuple[str, Body, str]] = [
    ("branches", branch(timezone="Mars/Olympus_Mons"), "timezone"),
    ("branches", branch(timezone="../../etc/passwd"), "timezone"),
    ("branches", branch(timezone="europe/berlin"), "timezone"),
    ("branches", branch(phone="12"), "phone"),
    ("branches", branch(phone="not a number"), "phone"),
    ("branches", branch(email="no-at-sign"), "email"),
    ("branches", branch(country="de"), "country"),
    ("branches", branch(name="   "), "name"),
    ("branches", branch(min_notice_minutes=-1), "min_notice_minutes"),
    ("branches", lambda org: {"timezone": "Europe/Berlin"}, "name"),
    ("branches", branch(company_id="someone-else"), "company_id"),
    ("services", service(price=-1), "price"),
    ("services", service(price="-0.01"), "price"),
    ("services", service(price="10.999"), "price"),
    ("services", service(price=1.005), "price"),
    ("services", service(price="ten"), "price"),
    ("services", service(price="NaN"), "price"),
    ("services", service(duration_minutes=0), "duration_minutes"),
    ("services", service(duration_minutes=-30), "duration_minutes"),
    ("services", service(duration_minutes=10**30), "duration_minutes"),
    ("services", service(buffer_before_minutes=-5), "buffer_before_minutes"),
    ("services", service(buffer_after_minutes=-1), "buffer_after_minutes"),
    ("services", service(currency="eur"), "currency"),
    ("services", service(currency="EURO"), "currency"),
    ("services", service(currency=""), "currency"),
    ("services", service(branch_id="no-such-branch"), "branch_id"),
    ("staff", lambda org: {"name": "Neu"}, "branch_id"),
    ("staff", staff(branch_id="no-such-branch"), "branch_id"),
    ("staff", staff(phone="+49 30"), "phone"),
    ("staff", staff(calcom_user_email="x@"), "calcom_user_email"),
    (
        "staff-services",
        lambda org: {"staff_id": "nope", "service_id": org.service["id"]},
        "staff_id",
    ),
    (
        "staff-services",
        lambda org: {"staff_id": org.staff["id"], "service_id": "nope"},
        "service_id",
    ),
    ("working-hours", hours(end_time="09:00"), "end_time"),
    ("working-hours", hours(end_time="08:00"), "end_time"),
    ("working-hours", hours(weekday=7), "weekday"),
    ("working-hours", hours(weekday=-1), "weekday"),
    ("working-hours", hours(weekday="funday"), "weekday"),
    ("working-hours", hours(weekday="mo"), "weekday"),
    ("working-hours", hours(start_time="25:00"), "start_time"),
    ("working-hours", hours(start_time="09:00:30"), "start_time"),
    ("working-hours", hours(start_time="09:00+02:00"), "start_time"),
    ("working-hours", hours(staff_id="nope"), "staff_id"),
    # the org's staff works Monday 09:00-12:30
    ("working-hours", hours(weekday=0, start_time="12:00", end_time="14:00"), "start_time"),
    ("working-hours", hours(weekday=0, start_time="08:00", end_time="18:00"), "start_time"),
    ("working-hours", hours(weekday=0, start_time="09:00", end_time="12:30"), "start_time"),
    ("time-off", time_off(ends_at="2030-03-01T09:00:00+01:00"), "ends_at"),
    ("time-off", time_off(ends_at="2030-03-01T07:00:00Z"), "ends_at"),
    ("time-off", time_off(starts_at="2030-03-01T09:00:00"), "starts_at"),
    ("time-off", time_off(starts_at="9999-12-31T23:59:59-12:00"), "starts_at"),
    ("time-off", time_off(staff_id="nope"), "staff_id"),
    ("phone-numbers", lambda org: {"number": "12345"}, "number"),
    ("phone-numbers", lambda org: {"number": "+999 123456"}, "number"),
    ("phone-numbers", lambda org: {"number": "030 1234567", "branch_id": "nope"}, "branch_id"),
    ("api-keys", lambda org: {"name": "k", "scopes": ["root"]}, "scopes"),
    ("api-keys", lambda org: {"name": "k", "scopes": []}, "scopes"),
    ("api-keys", lambda org: {"name": "", "scopes": ["agent"]}, "name"),
    (
        "api-keys",
        lambda org: {"name": "k", "scopes": ["agent"], "expires_at": "2001-01-01T00:00:00Z"},
        "expires_at",
    ),
]


@pytest.mark.parametrize(("resource", "body", "field"), CREATE_CASES)
async def test_invalid_create_is_422_and_stores_nothing(
    booking: httpx.AsyncClient, org: Org, resource: str, body: Body, field: str
) -> None:
    before = await items(booking, org.tenant, resource)
    response = await booking.post(
        f"{ADMIN}/{resource}", headers=org.writer(resource), json=body(org)
    )
    assert_problem(response, 422, "validation_error", field)
    assert await items(booking, org.tenant, resource) == before


PATCH_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("branches", {"timezone": "Nowhere/City"}, "timezone"),
    ("branches", {"name": None}, "name"),
    ("branches", {"id": "other"}, "id"),
    ("services", {"price": "-1"}, "price"),
    ("services", {"price": "1.001"}, "price"),
    ("services", {"duration_minutes": 0}, "duration_minutes"),
    ("services", {"duration_minutes": None}, "duration_minutes"),
    ("services", {"buffer_after_minutes": -1}, "buffer_after_minutes"),
    ("services", {"currency": "usd"}, "currency"),
    ("services", {"branch_id": "nope"}, "branch_id"),
    ("staff", {"branch_id": "nope"}, "branch_id"),
    ("staff", {"branch_id": None}, "branch_id"),
    ("staff", {"company_id": "other"}, "company_id"),
    ("staff-services", {"service_id": "nope"}, "service_id"),
    ("working-hours", {"end_time": "08:00"}, "end_time"),
    ("working-hours", {"start_time": "12:30"}, "end_time"),
    ("working-hours", {"weekday": 9}, "weekday"),
    ("working-hours", {"weekday": "someday"}, "weekday"),
    ("working-hours", {"staff_id": "nope"}, "staff_id"),
    ("time-off", {"ends_at": "2030-07-01T07:00:00+02:00"}, "ends_at"),
    ("time-off", {"starts_at": "2030-07-01T13:00:00+02:00"}, "ends_at"),
    ("phone-numbers", {"number": "0"}, "number"),
    ("phone-numbers", {"branch_id": "nope"}, "branch_id"),
]


@pytest.mark.parametrize(("resource", "patch", "field"), PATCH_CASES)
async def test_invalid_patch_is_422_and_changes_nothing(
    booking: httpx.AsyncClient, org: Org, resource: str, patch: dict[str, Any], field: str
) -> None:
    item = org.by_resource()[resource]
    url = f"{ADMIN}/{resource}/{item['id']}"
    response = await booking.patch(url, headers=org.headers, json=patch)
    assert_problem(response, 422, "validation_error", field)
    assert (await booking.get(url, headers=org.headers)).json() == item


async def test_several_intervals_per_weekday_but_no_overlap(
    booking: httpx.AsyncClient, org: Org
) -> None:
    staff_id = org.staff["id"]
    afternoon = await create(
        booking,
        org.tenant,
        "working-hours",
        {"staff_id": staff_id, "weekday": 0, "start_time": "13:00", "end_time": "18:00"},
    )
    touching = await create(
        booking,
        org.tenant,
        "working-hours",
        {"staff_id": staff_id, "weekday": 0, "start_time": "18:00", "end_time": "20:00"},
    )
    other_day = await create(
        booking,
        org.tenant,
        "working-hours",
        {"staff_id": staff_id, "weekday": 1, "start_time": "09:00", "end_time": "12:30"},
    )
    url = f"{ADMIN}/working-hours/{afternoon['id']}"
    overlap = await booking.patch(url, headers=org.headers, json={"start_time": "12:00"})
    assert_problem(overlap, 422, "validation_error", "start_time")
    moved = await booking.patch(url, headers=org.headers, json={"start_time": "12:30"})
    assert moved.status_code == 200, moved.text
    listed = await items(booking, org.tenant, "working-hours", staff_id=staff_id)
    assert [(i["weekday"], i["start_time"], i["end_time"]) for i in listed] == [
        (0, "09:00", "12:30"),
        (0, "12:30", "18:00"),
        (0, "18:00", "20:00"),
        (1, "09:00", "12:30"),
    ]
    assert {touching["id"], other_day["id"]} <= {i["id"] for i in listed}


async def test_weekday_names_are_stored_as_numbers(booking: httpx.AsyncClient, org: Org) -> None:
    staff_id = org.staff["id"]
    made = [
        await create(
            booking,
            org.tenant,
            "working-hours",
            {"staff_id": staff_id, "weekday": name, "start_time": "09:00", "end_time": "12:00"},
        )
        for name in ("Tuesday", "WED", "sun")
    ]
    assert [item["weekday"] for item in made] == [1, 2, 6]
    url = f"{ADMIN}/working-hours/{made[0]['id']}"
    moved = await booking.patch(url, headers=org.headers, json={"weekday": "friday"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["weekday"] == 4
    listed = await items(booking, org.tenant, "working-hours", staff_id=staff_id, weekday="fri")
    assert [item["id"] for item in listed] == [made[0]["id"]]
    assert [
        i["weekday"] for i in await items(booking, org.tenant, "working-hours", weekday="6")
    ] == [6]
    before = await items(booking, org.tenant, "working-hours")
    bad = await booking.post(
        f"{ADMIN}/working-hours",
        headers=org.headers,
        json={
            "staff_id": staff_id,
            "weekday": "Funday",
            "start_time": "09:00",
            "end_time": "10:00",
        },
    )
    assert_problem(bad, 422, "validation_error", "weekday")
    message = next(e["message"] for e in bad.json()["errors"] if e["field"] == "weekday")
    assert "monday, tuesday, wednesday, thursday, friday, saturday, sunday" in message
    assert await items(booking, org.tenant, "working-hours") == before
    listing = await booking.get(
        f"{ADMIN}/working-hours", headers=org.headers, params={"weekday": "someday"}
    )
    assert_problem(listing, 422, "validation_error", "weekday")


DUPLICATES: list[tuple[str, Body, str]] = [
    ("branches", lambda org: {"name": "Mitte", "timezone": "Europe/Berlin"}, "name"),
    ("branches", lambda org: {"name": "MITTE ", "timezone": "Europe/Berlin"}, "name"),
    ("services", lambda org: {"name": "haircut", "duration_minutes": 10}, "name"),
    ("staff", lambda org: {"name": "Anna", "branch_id": org.branch["id"]}, "name"),
    (
        "staff-services",
        lambda org: {"staff_id": org.staff["id"], "service_id": org.service["id"]},
        "service_id",
    ),
    ("phone-numbers", lambda org: {"number": org.phone_number["number"]}, "number"),
]


@pytest.mark.parametrize(("resource", "body", "field"), DUPLICATES)
async def test_duplicate_is_409_and_stores_nothing(
    booking: httpx.AsyncClient, org: Org, resource: str, body: Body, field: str
) -> None:
    before = await items(booking, org.tenant, resource)
    response = await booking.post(
        f"{ADMIN}/{resource}", headers=org.writer(resource), json=body(org)
    )
    assert_problem(response, 409, "conflict", field)
    assert await items(booking, org.tenant, resource) == before


async def test_rename_into_a_duplicate_is_409(booking: httpx.AsyncClient, org: Org) -> None:
    other = await create(booking, org.tenant, "services", {"name": "Beard", "duration_minutes": 15})
    url = f"{ADMIN}/services/{other['id']}"
    assert_problem(
        await booking.patch(url, headers=org.headers, json={"name": "Haircut"}), 409, "conflict"
    )
    same = await booking.patch(url, headers=org.headers, json={"name": "Beard"})
    assert same.status_code == 200, same.text


async def test_phone_number_of_another_company_is_409(
    booking: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    taken = org.phone_number["number"]
    response = await booking.post(
        f"{ADMIN}/phone-numbers", headers=other_org.platform_headers, json={"number": taken}
    )
    assert_problem(response, 409, "conflict", "number")


async def test_retell_agent_of_another_company_is_409(
    booking: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    number = org.phone_number["id"]
    claimed = await booking.patch(
        f"{ADMIN}/phone-numbers/{number}",
        headers=org.platform_headers,
        json={"retell_agent_id": "ag_1"},
    )
    assert claimed.status_code == 200, claimed.text
    # the same company may route several numbers to its agent
    await create(
        booking,
        org.tenant,
        "phone-numbers",
        {"number": unique_phone(), "retell_agent_id": "ag_1"},
        headers=org.platform_headers,
    )
    before = await items(booking, other_org.tenant, "phone-numbers")
    response = await booking.post(
        f"{ADMIN}/phone-numbers",
        headers=other_org.platform_headers,
        json={"number": unique_phone(), "retell_agent_id": "ag_1"},
    )
    assert_problem(response, 409, "conflict", "retell_agent_id")
    assert await items(booking, other_org.tenant, "phone-numbers") == before
