"""Admin lists page: `limit` rows in the list's order, `next_cursor` until the last page."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.admin.support import ADMIN, assert_problem, create
from tests.support.factories import Tenant


async def walk(
    client: httpx.AsyncClient, tenant: Tenant, resource: str, limit: int, **params: str
) -> tuple[list[dict[str, Any]], int]:
    """Every row of the list, page after page, and how many pages it took."""
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        query: dict[str, Any] = {"limit": limit, **params}
        if cursor is not None:
            query["cursor"] = cursor
        response = await client.get(f"{ADMIN}/{resource}", headers=tenant.headers, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert list(body) == ["items", "next_cursor"]
        rows += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return rows, pages
        assert len(body["items"]) == limit


async def staff_member(client: httpx.AsyncClient, tenant: Tenant, name: str) -> dict[str, Any]:
    body = {"name": f"Branch of {name}", "timezone": "Europe/Berlin"}
    branch = await create(client, tenant, "branches", body)
    return await create(client, tenant, "staff", {"name": name, "branch_id": branch["id"]})


async def test_branches_page_by_name(booking: httpx.AsyncClient, tenant: Tenant) -> None:
    for name in ["Delta", "Alpha", "Charlie", "Echo", "Bravo"]:
        await create(booking, tenant, "branches", {"name": name, "timezone": "Europe/Berlin"})
    rows, pages = await walk(booking, tenant, "branches", 2)
    assert [r["name"] for r in rows] == ["Alpha", "Bravo", "Charlie", "Delta", "Echo"]
    assert pages == 3
    rows, pages = await walk(booking, tenant, "branches", 5)
    assert len(rows) == 5 and pages == 1


async def test_working_hours_page_by_staff_weekday_and_start(
    booking: httpx.AsyncClient, tenant: Tenant
) -> None:
    staff = await staff_member(booking, tenant, "Anna")
    for weekday, start, end in [
        (1, "14:00", "15:00"),
        (0, "09:00", "10:00"),
        (1, "08:00", "09:00"),
    ]:
        body = {"staff_id": staff["id"], "weekday": weekday, "start_time": start, "end_time": end}
        await create(booking, tenant, "working-hours", body)
    rows, pages = await walk(booking, tenant, "working-hours", 1, staff_id=staff["id"])
    assert [(r["weekday"], r["start_time"][:5]) for r in rows] == [
        (0, "09:00"),
        (1, "08:00"),
        (1, "14:00"),
    ]
    assert pages == 3


async def test_time_off_pages_newest_first(booking: httpx.AsyncClient, tenant: Tenant) -> None:
    staff = await staff_member(booking, tenant, "Ben")
    for day in ["03", "01", "02"]:
        body = {
            "staff_id": staff["id"],
            "starts_at": f"2030-07-{day}T08:00:00+02:00",
            "ends_at": f"2030-07-{day}T12:00:00+02:00",
        }
        await create(booking, tenant, "time-off", body)
    rows, pages = await walk(booking, tenant, "time-off", 2)
    assert [r["starts_at"][:10] for r in rows] == ["2030-07-03", "2030-07-02", "2030-07-01"]
    assert pages == 2


@pytest.mark.parametrize("cursor", ["not-a-cursor", "bm9waXBl", "WyJhIl0", "WzEsMl0", "x" * 2001])
async def test_bad_cursor_is_422_naming_cursor(
    booking: httpx.AsyncClient, tenant: Tenant, cursor: str
) -> None:
    response = await booking.get(
        f"{ADMIN}/branches", headers=tenant.headers, params={"cursor": cursor}
    )
    assert_problem(response, 422, "validation_error", "cursor")


@pytest.mark.parametrize("limit", ["0", "501", "abc"])
async def test_bad_limit_is_422(booking: httpx.AsyncClient, tenant: Tenant, limit: str) -> None:
    response = await booking.get(
        f"{ADMIN}/branches", headers=tenant.headers, params={"limit": limit}
    )
    assert_problem(response, 422, "validation_error", "limit")
