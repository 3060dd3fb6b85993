"""Liveness and readiness: ready means the database and Redis both answer in time."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from shared.problems import problem

router = APIRouter(tags=["health"])


async def _check_database(request: Request, limit: float) -> str:
    async with asyncio.timeout(limit):
        async with request.app.state.db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    return "ok"


async def _check_redis(request: Request, limit: float) -> str:
    async with asyncio.timeout(limit):
        await request.app.state.redis.ping()
    return "ok"


async def _run(check: Any, request: Request, limit: float) -> str:
    try:
        result: str = await check(request, limit)
        return result
    except TimeoutError:
        return f"down: no answer within {limit:g} s"
    except Exception as exc:
        return f"down: {type(exc).__name__}: {str(exc)[:200]}"


@router.get("/health/live", summary="The process is running")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/health/ready", summary="The database and Redis answer", response_model=None)
async def ready(request: Request) -> JSONResponse | dict[str, Any]:
    timeout = request.app.state.settings.health_check_timeout_s
    database, redis = await asyncio.gather(
        _run(_check_database, request, timeout), _run(_check_redis, request, timeout)
    )
    checks = {"database": database, "redis": redis}
    down = [name for name, state in checks.items() if state != "ok"]
    if down:
        return problem(
            503,
            "not_ready",
            "Not ready",
            f"Unavailable: {', '.join(down)}",
            checks=checks,
        )
    return {"status": "ok", "checks": checks}
