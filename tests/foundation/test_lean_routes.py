"""shared/web/lean.py: a lean handler answers, or defers with the request intact to the FastAPI
route; its domain errors are problem+json, its answers are counted under the route template,
and LEAN_ROUTES=false turns every handler off."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from prometheus_client import REGISTRY
from starlette.responses import JSONResponse, Response

from shared.config import Settings
from shared.errors import NotFound
from shared.web.app import create_app
from shared.web.lean import MAX_LEAN_BODY, LeanRequest

router = APIRouter()


@router.post("/v1/echo")
async def echo(request: Request) -> dict[str, Any]:
    body = await request.body()
    return {"answered_by": "route", "size": len(body), "head": body[:20].decode()}


@router.get("/v1/items")
async def items() -> dict[str, Any]:
    return {"answered_by": "route"}


seen: list[LeanRequest] = []


async def lean_echo(request: LeanRequest) -> Response | None:
    seen.append(request)
    if "x-defer" in request.headers:
        return None
    if request.headers.get("x-fail") == "domain":
        raise NotFound("No such echo.", field="echo")
    if request.headers.get("x-fail") == "bug":
        raise RuntimeError("a bug in a lean handler")
    return JSONResponse({"answered_by": "lean", "size": len(request.body)}, status_code=201)


async def lean_items(request: LeanRequest) -> Response | None:
    seen.append(request)
    return JSONResponse({"answered_by": "lean", "query": request.query.decode()})


HANDLERS = {("POST", "/v1/echo"): lean_echo, ("GET", "/v1/items"): lean_items}


async def _client(settings: Settings, root_path: str = "") -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(
        service="leantest",
        title="lean test",
        description="",
        routers=[router],
        settings=settings,
        lean_routes=HANDLERS,
        configure_logs=False,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, root_path=root_path)
        async with httpx.AsyncClient(transport=transport, base_url="http://lean.test") as client:
            yield client


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    seen.clear()
    async for running in _client(settings):
        yield running


def _count(route: str, status: str) -> float:
    labels = {"service": "leantest", "route": route, "method": "POST", "status": status}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


async def test_a_lean_handler_answers_and_is_counted_under_the_route(
    client: httpx.AsyncClient,
) -> None:
    before = _count("/v1/echo", "201")
    response = await client.post("/v1/echo", content=b'{"a": 1}')
    assert response.status_code == 201
    assert response.json() == {"answered_by": "lean", "size": 8}
    assert response.headers["x-correlation-id"]  # inside the correlation middleware
    assert _count("/v1/echo", "201") == before + 1
    got = await client.get("/v1/items?b=2&c=%C3%A4", headers={"X-Thing": "1", "x-thing": "2"})
    assert got.json() == {"answered_by": "lean", "query": "b=2&c=%C3%A4"}
    assert seen[-1].headers["x-thing"] == "1"  # the first of repeated headers


async def test_a_deferred_request_reaches_the_route_with_its_body(
    client: httpx.AsyncClient,
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for part in (b"first-", b"second-", b"third"):
            yield part

    response = await client.post("/v1/echo", content=chunks(), headers={"x-defer": "1"})
    assert response.status_code == 200
    assert response.json() == {"answered_by": "route", "size": 18, "head": "first-second-third"}
    assert seen[-1].body == b"first-second-third"


async def test_a_large_body_goes_to_the_route_whole(client: httpx.AsyncClient) -> None:
    big = b"x" * (MAX_LEAN_BODY + 10_000)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 16_384):
            yield big[start : start + 16_384]

    calls = len(seen)
    response = await client.post("/v1/echo", content=chunks())
    assert response.json() == {"answered_by": "route", "size": len(big), "head": "x" * 20}
    assert len(seen) == calls  # never shown to the lean handler


async def test_errors_of_a_lean_handler(client: httpx.AsyncClient) -> None:
    refused = await client.post("/v1/echo", content=b"{}", headers={"x-fail": "domain"})
    assert refused.status_code == 404
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "not_found" and refused.json()["field"] == "echo"
    broken = await client.post("/v1/echo", content=b"{}", headers={"x-fail": "bug"})
    assert broken.status_code == 500
    assert broken.json()["code"] == "internal_error"


async def test_other_methods_and_paths_never_see_the_handler(client: httpx.AsyncClient) -> None:
    calls = len(seen)
    assert (await client.put("/v1/echo", content=b"{}")).status_code == 405
    assert (await client.post("/v1/echo/", content=b"{}")).status_code in (307, 404)
    assert (await client.get("/health/live")).status_code == 200
    assert len(seen) == calls


async def test_lean_routes_off(settings: Settings) -> None:
    seen.clear()
    async for client in _client(settings.model_copy(update={"lean_routes": False})):
        response = await client.post("/v1/echo", content=b"{}")
        assert response.json() == {"answered_by": "route", "size": 2, "head": "{}"}
        assert (await client.get("/v1/items")).json() == {"answered_by": "route"}
    assert seen == []


async def test_behind_a_path_prefix_the_route_path_is_matched(settings: Settings) -> None:
    """Mounted under a root_path (a proxy's prefix), as Starlette's router matches."""
    seen.clear()
    async for client in _client(settings, root_path="/api"):
        response = await client.post("/api/v1/echo", content=b"{}")
        assert response.json() == {"answered_by": "lean", "size": 2}
        deferred = await client.post("/api/v1/echo", content=b"{}", headers={"x-defer": "1"})
        assert deferred.json() == {"answered_by": "route", "size": 2, "head": "{}"}
    assert len(seen) == 2
