"""`GET /v1/notifications/deliveries` pages newest first with `limit` and `next_cursor`;
the small lists (event catalogue, configs) answer one page with `next_cursor` null."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from shared.db.engine import Database
from shared.db.types import utcnow
from shared.models import NotificationDelivery
from tests.conftest import Services
from tests.support.factories import Salon, create_salon

URL = "/v1/notifications/deliveries"


@pytest.fixture
def notifications(services: Services) -> httpx.AsyncClient:
    return services.clients["notifications"]


@pytest.fixture
async def salon(db: Database) -> Salon:
    return await create_salon(db)


async def add_deliveries(db: Database, company_id: str, count: int) -> list[str]:
    """`count` sent e-mails a minute apart (plus two at one instant); ids newest first."""
    now = utcnow()
    rows = [
        NotificationDelivery(
            event_id=f"evt-{i}",
            event_type="booking_confirmed",
            channel="email",
            recipient_key=f"key-{i}",
            recipient_masked="m***@example.com",
            recipient_kind="customer",
            language="de",
            status="sent",
            created_at=now - timedelta(minutes=min(i, count - 2)),
        )
        for i in range(count)
    ]
    async with db.transaction(company_id) as session:
        session.add_all(rows)
    ordered = sorted(rows, key=lambda r: (r.created_at, r.id), reverse=True)
    return [row.id for row in ordered]


async def test_pages_walk_every_delivery_newest_first_once(
    notifications: httpx.AsyncClient, db: Database, salon: Salon
) -> None:
    expected = await add_deliveries(db, salon.tenant.company_id, 5)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        response = await notifications.get(URL, params=params, headers=salon.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert list(body) == ["items", "next_cursor"]
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    assert pages == 3
    filtered = await notifications.get(
        URL, params={"limit": 2, "status": "failed"}, headers=salon.headers
    )
    assert filtered.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("cursor", ["not-a-cursor", "bm9waXBl", "x" * 201])
async def test_bad_cursor_is_422_naming_cursor(
    notifications: httpx.AsyncClient, salon: Salon, cursor: str
) -> None:
    response = await notifications.get(URL, params={"cursor": cursor}, headers=salon.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == "cursor"


async def test_small_lists_are_one_page(notifications: httpx.AsyncClient, salon: Salon) -> None:
    events = (await notifications.get("/v1/notification-events", headers=salon.headers)).json()
    assert list(events) == ["items", "next_cursor"]
    assert len(events["items"]) == 13 and events["next_cursor"] is None
    configs = await notifications.get("/v1/notification-configs", headers=salon.headers)
    assert configs.json() == {"items": [], "next_cursor": None}
