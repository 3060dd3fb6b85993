"""Readiness: 200 when the database and Redis answer, 503 naming what is down."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from shared.config import Settings
from tests.conftest import Services

SERVICES = ["booking", "policy", "webhooks", "notifications"]


@pytest.mark.parametrize("name", SERVICES)
async def test_ready_when_database_and_redis_answer(services: Services, name: str) -> None:
    client = services.clients[name]
    live = await client.get("/health/live")
    ready = await client.get("/health/ready")
    assert live.status_code == 200
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


@pytest.mark.parametrize("name", SERVICES)
async def test_metrics_are_prometheus_text(services: Services, name: str) -> None:
    client = services.clients[name]
    await client.get("/health/live")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert f'http_requests_total{{method="GET",route="/health/live",service="{name}"' in (
        response.text
    )


async def _ready_with(settings: Settings) -> httpx.Response:
    async with Services(settings) as running:
        return await running.clients["booking"].get("/health/ready")


async def test_not_ready_when_redis_is_down(settings: Settings) -> None:
    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    response = await _ready_with(broken)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "not_ready"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["redis"].startswith("down")
    assert body["detail"] == "Unavailable: redis"


async def test_not_ready_when_database_is_down(settings: Settings, tmp_path: Path) -> None:
    if settings.database_url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp_path}"  # a directory: the file cannot be opened
    else:
        url = "mysql+asyncmy://root@127.0.0.1:1/test"
    broken = settings.model_copy(update={"database_url": url})
    response = await _ready_with(broken)
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["redis"] == "ok"
    assert body["checks"]["database"].startswith("down")
    assert body["detail"] == "Unavailable: database"
