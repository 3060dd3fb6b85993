"""No input yields a 500: malformed bodies, wrong types, odd ids, races, database refusals."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.booking.admin import crud
from services.booking.admin.resources import BRANCHES
from services.booking.admin.schemas import BranchCreate
from shared.db.engine import Database
from shared.errors import Conflict
from shared.models import Appointment, Customer
from tests.admin.support import ADMIN, Org, assert_problem, create, items, unique_phone

WRITABLE = [
    "branches",
    "services",
    "staff",
    "staff-services",
    "working-hours",
    "time-off",
    "phone-numbers",
    "api-keys",
]
NASTY: list[Any] = [
    None,
    "",
    " ",
    "x" * 10_000,
    "\x00",
    "😀 Ünïcode",
    -1,
    0,
    10**20,
    -(10**20),
    1.5,
    1e308,
    True,
    [],
    {"nested": "object"},
    "2030-13-45T99:99:99+25:00",
    "24:00",
    "NaN",
]


def valid_body(org: Org, resource: str) -> dict[str, Any]:
    bodies: dict[str, dict[str, Any]] = {
        "branches": {"name": "Fuzz", "timezone": "Europe/Berlin", "phone": "030 7654321"},
        "services": {"name": "Fuzz", "duration_minutes": 30, "price": "1.00"},
        "staff": {"name": "Fuzz", "branch_id": org.branch["id"]},
        "staff-services": {"staff_id": org.staff["id"], "service_id": org.service["id"]},
        "working-hours": {
            "staff_id": org.staff["id"],
            "weekday": 4,
            "start_time": "09:00",
            "end_time": "10:00",
        },
        "time-off": {
            "staff_id": org.staff["id"],
            "starts_at": "2030-01-01T09:00:00Z",
            "ends_at": "2030-01-01T10:00:00Z",
        },
        "phone-numbers": {"number": unique_phone()},
        "api-keys": {"name": "fuzz", "scopes": ["agent"]},
    }
    return bodies[resource]


@pytest.mark.parametrize("resource", WRITABLE)
async def test_malformed_bodies_are_422(
    booking: httpx.AsyncClient, org: Org, resource: str
) -> None:
    json_header = {**org.headers, "Content-Type": "application/json"}
    urls = [("POST", f"{ADMIN}/{resource}")]
    if resource != "api-keys":
        urls.append(("PATCH", f"{ADMIN}/{resource}/{org.by_resource()[resource]['id']}"))
    for method, url in urls:
        for raw in [
            b"{bad json",
            b"",
            b"[]",
            b'"text"',
            b"null",
            b"42",
            b"\xff\xfe",
            b'{"a":' * 500,
        ]:
            response = await booking.request(method, url, headers=json_header, content=raw)
            assert_problem(response, 422, "validation_error")
        form = await booking.request(method, url, headers=org.headers, data={"name": "x"})
        assert form.status_code == 422, form.text


@pytest.mark.parametrize("resource", WRITABLE)
async def test_wrong_values_in_every_field_never_500(
    booking: httpx.AsyncClient, org: Org, resource: str
) -> None:
    body = valid_body(org, resource)
    target = org.by_resource().get(resource)
    for field in [*body, "active", "price", "branch_id", "expires_at"]:
        for value in NASTY:
            payload = {**valid_body(org, resource), field: value}
            writer = org.writer(resource)
            response = await booking.post(f"{ADMIN}/{resource}", headers=writer, json=payload)
            assert response.status_code in (201, 409, 422), (field, value, response.text)
            if target is not None:
                url = f"{ADMIN}/{resource}/{target['id']}"
                patched = await booking.patch(url, headers=writer, json={field: value})
                assert patched.status_code in (200, 409, 422), (field, value, patched.text)


@pytest.mark.parametrize("item_id", ["nope", "%00", "x" * 5000, "😀", "1 OR 1=1", "' or ''='"])
async def test_odd_ids_are_404(booking: httpx.AsyncClient, org: Org, item_id: str) -> None:
    for resource in WRITABLE:
        url = f"{ADMIN}/{resource}/{item_id}"
        assert_problem(await booking.get(url, headers=org.headers), 404, "not_found")
        assert_problem(await booking.delete(url, headers=org.headers), 404, "not_found")


async def test_bad_query_parameter_is_422(booking: httpx.AsyncClient, org: Org) -> None:
    response = await booking.get(f"{ADMIN}/staff?active=maybe", headers=org.headers)
    assert_problem(response, 422, "validation_error", "active")
    response = await booking.get(f"{ADMIN}/working-hours?weekday=moonday", headers=org.headers)
    assert_problem(response, 422, "validation_error", "weekday")


async def test_concurrent_duplicates_give_one_201_and_409s(
    booking: httpx.AsyncClient, org: Org
) -> None:
    number = unique_phone()
    requests = [
        booking.post(
            f"{ADMIN}/services", headers=org.headers, json={"name": "Race", "duration_minutes": 5}
        )
        for _ in range(5)
    ] + [
        booking.post(
            f"{ADMIN}/phone-numbers", headers=org.platform_headers, json={"number": number}
        )
        for _ in range(5)
    ]
    statuses = [r.status_code for r in await asyncio.gather(*requests)]
    assert sorted(statuses[:5]) == [201, 409, 409, 409, 409], statuses
    assert sorted(statuses[5:]) == [201, 409, 409, 409, 409], statuses
    assert [s["name"] for s in await items(booking, org.tenant, "services")].count("Race") == 1


async def test_constraint_violation_at_flush_is_a_conflict(db: Database, org: Org) -> None:
    """Even when the pre-check misses a duplicate (a race), the database refusal becomes 409."""
    unchecked = dataclasses.replace(BRANCHES, unique=())
    with pytest.raises(Conflict):
        async with db.transaction(org.tenant.company_id) as session:
            body = BranchCreate(name=org.branch["name"], timezone="Europe/Berlin")
            await crud.create(session, unchecked, body)


async def test_delete_is_refused_while_appointments_lie_ahead(
    booking: httpx.AsyncClient, db: Database, org: Org
) -> None:
    start = datetime.now(UTC) + timedelta(days=2)
    async with db.transaction(org.tenant.company_id) as session:
        customer = Customer(name="Kim", phone="+491701112233")
        session.add(customer)
        await session.flush()
        appointment = Appointment(
            branch_id=org.branch["id"],
            service_id=org.service["id"],
            staff_id=org.staff["id"],
            customer_id=customer.id,
            starts_at=start,
            ends_at=start + timedelta(minutes=30),
            blocked_from=start,
            blocked_until=start + timedelta(minutes=30),
        )
        session.add(appointment)
        await session.flush()
        appointment_id = appointment.id

    for resource, item in [
        ("staff", org.staff),
        ("services", org.service),
        ("branches", org.branch),
    ]:
        url = f"{ADMIN}/{resource}/{item['id']}"
        assert_problem(await booking.delete(url, headers=org.headers), 409, "conflict")
        assert (await booking.get(url, headers=org.headers)).status_code == 200

    async with db.transaction(org.tenant.company_id) as session:
        row = await session.get(Appointment, appointment_id)
        assert row is not None
        row.status = "cancelled"
    url = f"{ADMIN}/staff/{org.staff['id']}"
    assert (await booking.delete(url, headers=org.headers)).status_code == 204


async def test_unicode_names_round_trip(booking: httpx.AsyncClient, org: Org) -> None:
    created = await create(
        booking,
        org.tenant,
        "staff",
        {"name": "Zoë Müller-Łukasz 😀", "branch_id": org.branch["id"]},
    )
    got = await booking.get(f"{ADMIN}/staff/{created['id']}", headers=org.headers)
    assert got.json()["name"] == "Zoë Müller-Łukasz 😀"
