"""Liveness and readiness (ADR 0018).

- `/health/live` touches nothing outside the process: a pod is restarted only when the process
  itself is stuck, never because a dependency is.
- `/health/ready` is 503 only when the service cannot do its core job: when a dependency it
  *requires* does not answer within HEALTH_CHECK_TIMEOUT_S. Every service requires its
  database. None requires Redis: bookings and webhook acknowledgements are written to the
  database (the outbox and `webhook_events`, enqueued by the sweepers once Redis is back),
  rate limits fail open, caches fall back to the database, the revocation watcher shortens the
  key cache to 2 s. A dependency that is down but not required makes the answer 200
  `{"status": "degraded", ..., "degraded": ["redis"]}`: taking every pod out of rotation for a
  Redis outage would turn a degradation into an outage.
- `dependency_up{service,dependency}` (1/0) is set by each readiness check, so a degraded
  dependency is visible to alerts although readiness stays 200.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from prometheus_client import Gauge
from sqlalchemy import text

from shared.web.problems import problem

router = APIRouter(tags=["health"])

DATABASE: Final = "database"
REDIS: Final = "redis"
# What each service cannot serve its core requests without (docs/operations.md "Health").
REQUIRED: Final[Mapping[str, frozenset[str]]] = {
    "booking": frozenset({DATABASE}),
    "policy": frozenset({DATABASE}),
    "webhooks": frozenset({DATABASE}),
    "notifications": frozenset({DATABASE}),
}
DEFAULT_REQUIRED: Final = frozenset({DATABASE})

DEPENDENCY_UP = Gauge(
    "dependency_up",
    "Whether a dependency answered the last readiness check (1) or not (0).",
    ["service", "dependency"],
)

Check = Callable[[Request, float], Awaitable[str]]


async def _check_database(request: Request, limit: float) -> str:
    async with asyncio.timeout(limit):
        async with request.app.state.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    return "ok"


async def _check_redis(request: Request, limit: float) -> str:
    async with asyncio.timeout(limit):
        await request.app.state.redis.ping()
    return "ok"


CHECKS: Final[Mapping[str, Check]] = {DATABASE: _check_database, REDIS: _check_redis}


async def _run(check: Check, request: Request, limit: float) -> str:
    try:
        return await check(request, limit)
    except TimeoutError:
        return f"down: no answer within {limit:g} s"
    except Exception as exc:
        return f"down: {type(exc).__name__}: {str(exc)[:200]}"


def required(service: str) -> frozenset[str]:
    """The dependencies without which `service` is not ready."""
    return REQUIRED.get(service, DEFAULT_REQUIRED)


@router.get("/health/live", summary="The process is running (checks nothing external)")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/health/ready",
    summary="Ready for traffic: the required dependencies answer (others may be degraded)",
    response_model=None,
)
async def ready(request: Request) -> JSONResponse | dict[str, Any]:
    timeout = request.app.state.settings.health_check_timeout_s
    service = str(getattr(request.app.state, "service", ""))
    states = await asyncio.gather(*(_run(check, request, timeout) for check in CHECKS.values()))
    checks = dict(zip(CHECKS, states, strict=True))
    for name, state in checks.items():
        DEPENDENCY_UP.labels(service, name).set(1 if state == "ok" else 0)
    need = required(service)
    down = [name for name, state in checks.items() if state != "ok" and name in need]
    degraded = [name for name, state in checks.items() if state != "ok" and name not in need]
    if down:
        return problem(
            503,
            "not_ready",
            "Not ready",
            f"Unavailable: {', '.join(down)}",
            checks=checks,
            degraded=degraded,
        )
    return {"status": "degraded" if degraded else "ok", "checks": checks, "degraded": degraded}
