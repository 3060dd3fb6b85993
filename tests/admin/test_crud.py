"""CRUD round trips: create -> get -> patch -> list -> delete -> 404, with exact values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx

from tests.admin.support import ADMIN, Org, assert_problem, create, items, unique_phone
from tests.support.factories import Tenant

STAMPS = ("id", "company_id", "created_at", "updated_at")


def fields(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in STAMPS}


async def round_trip(
    client: httpx.AsyncClient,
    tenant: Tenant,
    resource: str,
    created: dict[str, Any],
    patch: dict[str, Any],
    patched: dict[str, Any],
) -> dict[str, Any]:
    """Run the full cycle on `created`; returns the patched item (deleted at the end)."""
    url = f"{ADMIN}/{resource}/{created['id']}"
    assert created["company_id"] == tenant.company_id
    for stamp in ("created_at", "updated_at"):
        assert datetime.fromisoformat(created[stamp]).utcoffset() is not None

    got = await client.get(url, headers=tenant.headers)
    assert got.status_code == 200, got.text
    assert got.json() == created

    changed = await client.patch(url, headers=tenant.headers, json=patch)
    assert changed.status_code == 200, changed.text
    assert fields(changed.json()) == patched
    assert changed.json()["id"] == created["id"]
    assert (await client.get(url, headers=tenant.headers)).json() == changed.json()

    assert changed.json() in await items(client, tenant, resource)

    deleted = await client.delete(url, headers=tenant.headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_problem(await client.get(url, headers=tenant.headers), 404, "not_found")
    assert_problem(await client.patch(url, headers=tenant.headers, json=patch), 404, "not_found")
    assert_problem(await client.delete(url, headers=tenant.headers), 404, "not_found")
    assert created["id"] not in [i["id"] for i in await items(client, tenant, resource)]
    result: dict[str, Any] = changed.json()
    return result


async def test_branch_round_trip(booking: httpx.AsyncClient, tenant: Tenant) -> None:
    body = {
        "name": "Kreuzberg",
        "timezone": "Europe/Berlin",
        "address_line": "Oranienstr. 1",
        "postal_code": "10999",
        "city": "Berlin",
        "phone": "030 1234567",
        "email": "kreuzberg@example.com",
        "min_notice_minutes": 60,
        "booking_window_days": 30,
        "callback_sla_minutes": 90,
    }
    created = await create(booking, tenant, "branches", body)
    assert fields(created) == {
        **body,
        "phone": "+49301234567",
        "country": "DE",
        "active": True,
        "callback_escalation_chain": None,
    }
    await create(booking, tenant, "branches", {"name": "Altona", "timezone": "Europe/Berlin"})
    listed = await items(booking, tenant, "branches")
    assert [b["name"] for b in listed] == ["Altona", "Kreuzberg"]

    patched = {
        **fields(created),
        "name": "Wien",
        "timezone": "Europe/Vienna",
        "country": "AT",
        "city": None,
        "active": False,
    }
    patch = {"name": "Wien", "timezone": "Europe/Vienna", "country": "AT", "city": None}
    await round_trip(booking, tenant, "branches", created, {**patch, "active": False}, patched)
    assert [b["name"] for b in await items(booking, tenant, "branches", active="true")] == [
        "Altona"
    ]


async def test_service_round_trip(booking: httpx.AsyncClient, org: Org) -> None:
    body = {
        "name": "Colour",
        "description": "Full colour",
        "duration_minutes": 90,
        "price": 59.5,
        "currency": "EUR",
        "buffer_before_minutes": 5,
        "buffer_after_minutes": 10,
        "branch_id": org.branch["id"],
    }
    created = await create(booking, org.tenant, "services", body)
    expected = {
        **body,
        "price": "59.50",
        "slot_step_minutes": 15,
        "calcom_event_type_id": None,
        "active": True,
    }
    assert fields(created) == expected
    listed = await items(booking, org.tenant, "services")
    assert [s["name"] for s in listed] == ["Colour", "Haircut"]
    filtered = await items(booking, org.tenant, "services", branch_id=org.branch["id"])
    assert [s["name"] for s in filtered] == ["Colour"]

    patch = {"price": "65", "currency": "CHF", "calcom_event_type_id": 4711, "branch_id": None}
    patched = {**expected, "price": "65.00", "currency": "CHF", "calcom_event_type_id": 4711}
    await round_trip(
        booking, org.tenant, "services", created, patch, {**patched, "branch_id": None}
    )


async def test_staff_round_trip(booking: httpx.AsyncClient, org: Org) -> None:
    second = await create(
        booking, org.tenant, "branches", {"name": "Pankow", "timezone": "Europe/Berlin"}
    )
    body = {"name": "Ben", "branch_id": second["id"], "phone": "0170 1234567"}
    created = await create(booking, org.tenant, "staff", body)
    expected = {
        **body,
        "phone": "+491701234567",
        "email": None,
        "calcom_user_email": None,
        "active": True,
    }
    assert fields(created) == expected
    assert [s["name"] for s in await items(booking, org.tenant, "staff")] == ["Anna", "Ben"]
    in_second = await items(booking, org.tenant, "staff", branch_id=second["id"])
    assert [s["name"] for s in in_second] == ["Ben"]

    patch = {"calcom_user_email": "ben@example.com", "branch_id": org.branch["id"]}
    patched = {**expected, **patch}
    await round_trip(booking, org.tenant, "staff", created, patch, patched)


async def test_staff_service_round_trip(booking: httpx.AsyncClient, org: Org) -> None:
    service = await create(
        booking, org.tenant, "services", {"name": "Shave", "duration_minutes": 20}
    )
    body = {"staff_id": org.staff["id"], "service_id": service["id"], "skill_level": 2}
    created = await create(booking, org.tenant, "staff-services", body)
    assert fields(created) == body
    mine = await items(booking, org.tenant, "staff-services", staff_id=org.staff["id"])
    assert [i["id"] for i in mine] == [created["id"], org.staff_service["id"]]  # newest first
    await round_trip(
        booking,
        org.tenant,
        "staff-services",
        created,
        {"skill_level": 3},
        {**body, "skill_level": 3},
    )


async def test_working_hours_round_trip(booking: httpx.AsyncClient, org: Org) -> None:
    staff = org.staff["id"]
    body = {"staff_id": staff, "weekday": 0, "start_time": "13:00", "end_time": "18:00"}
    created = await create(booking, org.tenant, "working-hours", body)
    assert fields(created) == body
    tuesday = await create(
        booking,
        org.tenant,
        "working-hours",
        {"staff_id": staff, "weekday": 1, "start_time": "09:00:00", "end_time": "14:00"},
    )
    assert (tuesday["start_time"], tuesday["end_time"]) == ("09:00", "14:00")
    listed = await items(booking, org.tenant, "working-hours", staff_id=staff)
    assert [(i["weekday"], i["start_time"], i["end_time"]) for i in listed] == [
        (0, "09:00", "12:30"),
        (0, "13:00", "18:00"),
        (1, "09:00", "14:00"),
    ]
    monday = await items(booking, org.tenant, "working-hours", staff_id=staff, weekday="0")
    assert len(monday) == 2

    patch = {"end_time": "17:30"}
    await round_trip(booking, org.tenant, "working-hours", created, patch, {**body, **patch})


async def test_time_off_round_trip_answers_in_branch_offset(
    booking: httpx.AsyncClient, org: Org
) -> None:
    body = {
        "staff_id": org.staff["id"],
        "starts_at": "2030-01-10T08:00:00Z",
        "ends_at": "2030-01-10T16:30:00+00:00",
        "reason": "Training",
    }
    created = await create(booking, org.tenant, "time-off", body)
    assert fields(created) == {
        **body,
        "starts_at": "2030-01-10T09:00:00+01:00",
        "ends_at": "2030-01-10T17:30:00+01:00",
    }
    listed = await items(booking, org.tenant, "time-off", staff_id=org.staff["id"])
    assert [i["id"] for i in listed] == [org.time_off["id"], created["id"]]  # latest start first
    assert org.time_off["starts_at"] == "2030-07-01T08:00:00+02:00"

    patch = {"ends_at": "2030-01-11T10:00:00+01:00", "reason": None}
    patched = {**fields(created), "ends_at": "2030-01-11T10:00:00+01:00", "reason": None}
    await round_trip(booking, org.tenant, "time-off", created, patch, patched)


async def test_phone_number_round_trip(booking: httpx.AsyncClient, org: Org) -> None:
    e164 = unique_phone()
    national = "0" + e164[3:5] + " " + e164[5:]
    body = {"number": national, "label": "Hotline", "retell_agent_id": "agent_abc"}
    created = await create(booking, org.tenant, "phone-numbers", body, org.platform_headers)
    expected = {**body, "number": e164, "branch_id": None, "active": True}
    assert fields(created) == expected
    listed = await items(booking, org.tenant, "phone-numbers")
    assert sorted(i["number"] for i in listed) == [i["number"] for i in listed]
    in_branch = await items(booking, org.tenant, "phone-numbers", branch_id=org.branch["id"])
    assert [i["id"] for i in in_branch] == [org.phone_number["id"]]

    patch = {"branch_id": org.branch["id"], "label": "Mitte", "active": False}
    await round_trip(booking, org.tenant, "phone-numbers", created, patch, {**expected, **patch})


async def test_patch_with_empty_body_changes_nothing(booking: httpx.AsyncClient, org: Org) -> None:
    for resource, item in org.by_resource().items():
        url = f"{ADMIN}/{resource}/{item['id']}"
        response = await booking.patch(url, headers=org.headers, json={})
        assert response.status_code == 200, (resource, response.text)
        assert fields(response.json()) == fields(item)
