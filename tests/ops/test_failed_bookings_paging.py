"""`GET /v1/ops/failed-bookings` pages: `limit` rows, `next_cursor` until the last page."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from shared.db.engine import Database
from shared.db.types import utcnow
from tests.ops.test_failed_bookings import add_failure, operator
from tests.support.factories import create_salon

URL = "/v1/ops/failed-bookings"


async def test_pages_walk_every_failure_newest_first_once(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    company_id = salon.tenant.company_id
    ops = await operator(db, company_id)
    now = utcnow()
    for minutes in range(5):
        await add_failure(db, company_id, now - timedelta(minutes=10 + minutes), f"f{minutes}")

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        response = await booking.get(URL, params=params, headers=ops)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [item["error_code"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert len(body["items"]) == 2
    assert seen == ["f0", "f1", "f2", "f3", "f4"]
    assert pages == 3

    whole = (await booking.get(URL, headers=ops)).json()
    assert [i["error_code"] for i in whole["items"]] == seen
    assert whole["next_cursor"] is None


@pytest.mark.parametrize("cursor", ["not-a-cursor", "x" * 201, "bm9waXBl"])
async def test_bad_cursor_is_422_naming_cursor(
    booking: httpx.AsyncClient, db: Database, cursor: str
) -> None:
    salon = await create_salon(db)
    ops = await operator(db, salon.tenant.company_id)
    response = await booking.get(URL, params={"cursor": cursor}, headers=ops)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == "cursor"


@pytest.mark.parametrize("limit", ["0", "501", "abc"])
async def test_bad_limit_is_422(booking: httpx.AsyncClient, db: Database, limit: str) -> None:
    salon = await create_salon(db)
    ops = await operator(db, salon.tenant.company_id)
    response = await booking.get(URL, params={"limit": limit}, headers=ops)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "limit"
