"""Tenant isolation: another company's ids are 404, never listed, never accepted as references."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shared.db.engine import Database
from tests.admin.support import ADMIN, Org, assert_problem, create, items, unique_phone
from tests.support.factories import create_platform_key

RESOURCES = [
    "branches",
    "services",
    "staff",
    "staff-services",
    "working-hours",
    "time-off",
    "phone-numbers",
]
HARMLESS_PATCH = {
    "branches": {"name": "Taken over"},
    "services": {"name": "Taken over"},
    "staff": {"name": "Taken over"},
    "staff-services": {"skill_level": 5},
    "working-hours": {"end_time": "12:00"},
    "time-off": {"reason": "Taken over"},
    "phone-numbers": {"label": "Taken over"},
}


@pytest.mark.parametrize("resource", RESOURCES)
async def test_other_company_gets_404_and_changes_nothing(
    booking: httpx.AsyncClient, org: Org, other_org: Org, resource: str
) -> None:
    item = org.by_resource()[resource]
    url = f"{ADMIN}/{resource}/{item['id']}"
    intruder = other_org.headers

    assert_problem(await booking.get(url, headers=intruder), 404, "not_found")
    patch = HARMLESS_PATCH[resource]
    assert_problem(await booking.patch(url, headers=intruder, json=patch), 404, "not_found")
    assert_problem(await booking.delete(url, headers=intruder), 404, "not_found")

    theirs = await items(booking, other_org.tenant, resource)
    assert item["id"] not in [i["id"] for i in theirs]
    assert {i["company_id"] for i in theirs} == {other_org.tenant.company_id}
    assert (await booking.get(url, headers=org.headers)).json() == item


async def test_filters_with_another_companys_ids_find_nothing(
    booking: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    for resource, params in [
        ("staff", {"branch_id": org.branch["id"]}),
        ("services", {"branch_id": org.branch["id"]}),
        ("staff-services", {"staff_id": org.staff["id"]}),
        ("working-hours", {"staff_id": org.staff["id"]}),
        ("time-off", {"staff_id": org.staff["id"]}),
        ("phone-numbers", {"branch_id": org.branch["id"]}),
    ]:
        assert await items(booking, other_org.tenant, resource, **params) == []


Ref = Callable[[Org], dict[str, Any]]
FOREIGN_REFERENCES: list[tuple[str, Ref, str]] = [
    (
        "services",
        lambda o: {"name": "X", "duration_minutes": 5, "branch_id": o.branch["id"]},
        "branch_id",
    ),
    ("staff", lambda o: {"name": "X", "branch_id": o.branch["id"]}, "branch_id"),
    (
        "phone-numbers",
        lambda o: {"number": unique_phone(), "branch_id": o.branch["id"]},
        "branch_id",
    ),
    ("staff-services", lambda o: {"staff_id": o.staff["id"], "service_id": "own"}, "staff_id"),
    ("staff-services", lambda o: {"staff_id": "own", "service_id": o.service["id"]}, "service_id"),
    (
        "working-hours",
        lambda o: {
            "staff_id": o.staff["id"],
            "weekday": 3,
            "start_time": "09:00",
            "end_time": "10:00",
        },
        "staff_id",
    ),
    (
        "time-off",
        lambda o: {
            "staff_id": o.staff["id"],
            "starts_at": "2030-02-01T09:00:00Z",
            "ends_at": "2030-02-01T10:00:00Z",
        },
        "staff_id",
    ),
]


def _own(body: dict[str, Any], mine: Org) -> dict[str, Any]:
    """Fill the placeholder "own" with the caller's own id, so only one reference is foreign."""
    own = {"staff_id": mine.staff["id"], "service_id": mine.service["id"]}
    return {k: own[k] if v == "own" else v for k, v in body.items()}


@pytest.mark.parametrize(("resource", "body", "field"), FOREIGN_REFERENCES)
async def test_reference_to_another_company_is_422_on_create(
    booking: httpx.AsyncClient, org: Org, other_org: Org, resource: str, body: Ref, field: str
) -> None:
    before = await items(booking, other_org.tenant, resource)
    payload = _own(body(org), other_org)
    writer = other_org.writer(resource)
    response = await booking.post(f"{ADMIN}/{resource}", headers=writer, json=payload)
    assert_problem(response, 422, "validation_error", field)
    assert await items(booking, other_org.tenant, resource) == before


FOREIGN_PATCHES = [
    ("services", "branch_id", "branch"),
    ("staff", "branch_id", "branch"),
    ("phone-numbers", "branch_id", "branch"),
    ("staff-services", "staff_id", "staff"),
    ("staff-services", "service_id", "service"),
    ("working-hours", "staff_id", "staff"),
    ("time-off", "staff_id", "staff"),
]


@pytest.mark.parametrize(("resource", "field", "target"), FOREIGN_PATCHES)
async def test_reference_to_another_company_is_422_on_patch(
    booking: httpx.AsyncClient, org: Org, other_org: Org, resource: str, field: str, target: str
) -> None:
    item = other_org.by_resource()[resource]
    url = f"{ADMIN}/{resource}/{item['id']}"
    foreign_id = getattr(org, target)["id"]
    response = await booking.patch(url, headers=other_org.headers, json={field: foreign_id})
    assert_problem(response, 422, "validation_error", field)
    assert (await booking.get(url, headers=other_org.headers)).json() == item


async def test_api_keys_of_another_company_are_invisible(
    booking: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    key = await create(booking, org.tenant, "api-keys", {"name": "ops", "scopes": ["operator"]})
    url = f"{ADMIN}/api-keys/{key['id']}"
    intruder = other_org.headers
    assert_problem(await booking.get(url, headers=intruder), 404, "not_found")
    assert_problem(await booking.patch(url, headers=intruder, json={"name": "x"}), 404, "not_found")
    assert_problem(await booking.delete(url, headers=intruder), 404, "not_found")
    assert key["id"] not in [k["id"] for k in await items(booking, other_org.tenant, "api-keys")]
    still = await booking.get(url, headers=org.headers)
    assert still.json()["revoked_at"] is None
    assert still.json()["name"] == "ops"


async def test_calcom_integration_is_per_company(
    booking: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    url = f"{ADMIN}/integrations/calcom"
    put = await booking.put(url, headers=org.headers, json={"api_key": "cal_live_secret_0001"})
    assert put.status_code == 200, put.text
    theirs = await booking.get(url, headers=other_org.headers)
    assert theirs.json()["configured"] is False
    assert (await booking.delete(url, headers=other_org.headers)).status_code == 204
    mine = await booking.get(url, headers=org.headers)
    assert mine.json()["configured"] is True
    assert mine.json()["api_key"] == "****0001"


async def test_platform_key_acts_as_the_named_company(
    booking: httpx.AsyncClient, db: Database, org: Org, other_org: Org
) -> None:
    platform = await create_platform_key(db)
    as_org = {"Authorization": f"Bearer {platform}", "X-Company-ID": org.tenant.company_id}
    listed = await booking.get(f"{ADMIN}/branches", headers=as_org)
    assert listed.status_code == 200, listed.text
    assert [b["id"] for b in listed.json()["items"]] == [org.branch["id"]]

    made = await booking.post(
        f"{ADMIN}/staff", headers=as_org, json={"name": "Platform", "branch_id": org.branch["id"]}
    )
    assert made.status_code == 201, made.text
    assert made.json()["company_id"] == org.tenant.company_id
    assert made.json()["id"] in [s["id"] for s in await items(booking, org.tenant, "staff")]

    foreign = await booking.get(f"{ADMIN}/branches/{other_org.branch['id']}", headers=as_org)
    assert_problem(foreign, 404, "not_found")
    refused = await booking.post(
        f"{ADMIN}/staff", headers=as_org, json={"name": "X", "branch_id": other_org.branch["id"]}
    )
    assert_problem(refused, 422, "validation_error", "branch_id")

    key = await booking.post(
        f"{ADMIN}/api-keys", headers=as_org, json={"name": "issued", "scopes": ["agent"]}
    )
    assert key.status_code == 201, key.text
    assert key.json()["company_id"] == org.tenant.company_id
