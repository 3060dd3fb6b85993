"""Helpers of the admin API tests: create through the API, assert problem answers."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.factories import Tenant

ADMIN = "/v1/admin"


def unique_phone() -> str:
    """A random valid Berlin number (numbers are unique across all companies)."""
    return f"+4930{20_000_000 + secrets.randbelow(79_999_999)}"


def platform_headers(platform_key: str, tenant: Tenant) -> dict[str, str]:
    """A platform key acting for `tenant` (only it may attach numbers and Retell agents)."""
    return {"Authorization": f"Bearer {platform_key}", "X-Company-ID": tenant.company_id}


async def create(
    client: httpx.AsyncClient,
    tenant: Tenant,
    resource: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    response = await client.post(
        f"{ADMIN}/{resource}", headers=headers or tenant.headers, json=body
    )
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()
    return item


async def items(
    client: httpx.AsyncClient, tenant: Tenant, resource: str, **params: str
) -> list[dict[str, Any]]:
    response = await client.get(f"{ADMIN}/{resource}", headers=tenant.headers, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    # Every test list fits the default page of 200 (the key lists are always one page).
    assert list(body) == ["items", "next_cursor"]
    assert body["next_cursor"] is None
    result: list[dict[str, Any]] = body["items"]
    return result


def assert_problem(
    response: httpx.Response, status: int, code: str, field: str | None = None
) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    assert body["status"] == status
    if field is not None:
        assert body["field"] == field, body
        if status == 422:
            assert field in [e["field"] for e in body["errors"]], body


@dataclass
class Org:
    """One company's resources, as the API returned them."""

    tenant: Tenant
    branch: dict[str, Any]
    service: dict[str, Any]
    staff: dict[str, Any]
    staff_service: dict[str, Any]
    working_hours: dict[str, Any]
    time_off: dict[str, Any]
    phone_number: dict[str, Any]
    platform_key: str

    @property
    def headers(self) -> dict[str, str]:
        return self.tenant.headers

    @property
    def platform_headers(self) -> dict[str, str]:
        return platform_headers(self.platform_key, self.tenant)

    def writer(self, resource: str) -> dict[str, str]:
        """Who creates `resource`: the platform for phone numbers, else the company's key."""
        return self.platform_headers if resource == "phone-numbers" else self.headers

    def by_resource(self) -> dict[str, dict[str, Any]]:
        return {
            "branches": self.branch,
            "services": self.service,
            "staff": self.staff,
            "staff-services": self.staff_service,
            "working-hours": self.working_hours,
            "time-off": self.time_off,
            "phone-numbers": self.phone_number,
        }


async def build_org(client: httpx.AsyncClient, tenant: Tenant, platform_key: str) -> Org:
    branch = await create(
        client, tenant, "branches", {"name": "Mitte", "timezone": "Europe/Berlin"}
    )
    service = await create(
        client,
        tenant,
        "services",
        {"name": "Haircut", "duration_minutes": 30, "price": "25.00", "currency": "EUR"},
    )
    staff = await create(client, tenant, "staff", {"name": "Anna", "branch_id": branch["id"]})
    staff_service = await create(
        client, tenant, "staff-services", {"staff_id": staff["id"], "service_id": service["id"]}
    )
    hours = await create(
        client,
        tenant,
        "working-hours",
        {"staff_id": staff["id"], "weekday": 0, "start_time": "09:00", "end_time": "12:30"},
    )
    time_off = await create(
        client,
        tenant,
        "time-off",
        {
            "staff_id": staff["id"],
            "starts_at": "2030-07-01T08:00:00+02:00",
            "ends_at": "2030-07-01T12:00:00+02:00",
        },
    )
    number = await create(
        client,
        tenant,
        "phone-numbers",
        {"number": unique_phone(), "branch_id": branch["id"]},
        headers=platform_headers(platform_key, tenant),
    )
    return Org(tenant, branch, service, staff, staff_service, hours, time_off, number, platform_key)
