"""Liveness and readiness (ADR 0018): live checks nothing external; ready is 503 only when a
required dependency (the database, for all four services) is down, and 200 naming the
degraded ones otherwise (Redis: no service needs it to serve its core requests)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from shared.config import Settings
from shared.web.health import required
from tests.conftest import Services

SERVICES = ["booking", "policy", "webhooks", "notifications"]
NO_REDIS = "redis://127.0.0.1:1/0"


@pytest.mark.parametrize("name", SERVICES)
async def test_ready_when_database_and_redis_answer(services: Services, name: str) -> None:
    client = services.clients[name]
    live = await client.get("/health/live")
    ready = await client.get("/health/ready")
    assert live.status_code == 200
    assert ready.status_code == 200, ready.text
    assert ready.json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok"},
        "degraded": [],
    }


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


def test_every_service_requires_its_database_and_none_redis() -> None:
    for name in SERVICES:
        assert required(name) == {"database"}, name


async def _probe(settings: Settings, path: str) -> dict[str, httpx.Response]:
    async with Services(settings) as running:
        return {name: await running.clients[name].get(path) for name in SERVICES}


def _broken_database(settings: Settings, tmp_path: Path) -> str:
    if settings.database_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path}"  # a directory: the file cannot be opened
    return "mysql+asyncmy://root@127.0.0.1:1/test"


async def test_ready_but_degraded_when_redis_is_down(settings: Settings) -> None:
    broken = settings.model_copy(update={"redis_url": NO_REDIS})
    async with Services(broken) as running:
        for name in SERVICES:
            client = running.clients[name]
            response = await client.get("/health/ready")
            assert response.status_code == 200, (name, response.text)
            body = response.json()
            assert body["status"] == "degraded"
            assert body["degraded"] == ["redis"]
            assert body["checks"]["database"] == "ok"
            assert body["checks"]["redis"].startswith("down: ")
            metrics = (await client.get("/metrics")).text
            assert f'dependency_up{{dependency="redis",service="{name}"}} 0.0' in metrics
            assert f'dependency_up{{dependency="database",service="{name}"}} 1.0' in metrics


async def test_not_ready_when_database_is_down(settings: Settings, tmp_path: Path) -> None:
    broken = settings.model_copy(update={"database_url": _broken_database(settings, tmp_path)})
    for name, response in (await _probe(broken, "/health/ready")).items():
        assert response.status_code == 503, (name, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["code"] == "not_ready"
        assert body["checks"]["redis"] == "ok"
        assert body["checks"]["database"].startswith("down")
        assert body["detail"] == "Unavailable: database"
        assert body["degraded"] == []


async def test_live_depends_on_nothing_external(settings: Settings, tmp_path: Path) -> None:
    """Database and Redis both down: not ready (the database), but alive."""
    broken = settings.model_copy(
        update={"database_url": _broken_database(settings, tmp_path), "redis_url": NO_REDIS}
    )
    async with Services(broken) as running:
        for name in SERVICES:
            client = running.clients[name]
            live = await client.get("/health/live")
            assert (live.status_code, live.json()) == (200, {"status": "ok"}), name
            ready = await client.get("/health/ready")
            assert ready.status_code == 503
            body = ready.json()
            assert body["detail"] == "Unavailable: database"
            assert body["degraded"] == ["redis"]
