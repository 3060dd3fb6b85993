"""Lean routes: the hottest endpoints answered without FastAPI's per-request machinery.

FastAPI's routing, dependency solving, body parsing and response-model serialization cost
more CPU than the whole database and Redis work of a warm policy evaluation (docs/adr/0009).
A route that must answer in a few milliseconds under load gets a lean handler as well: a
plain coroutine that sees the raw request inside the correlation, metrics and tracing
middleware, and either answers it or *defers* it.

Deferring is returning None before anything with an effect has happened (a rate-limit hit,
a write): the request then goes on to its FastAPI route with its body intact, and that route
answers exactly as it always does. So a lean handler covers only the common, well-formed,
warm case; every refusal that needs no domain logic (a malformed body, an unknown or
uncached key, a missing header) is answered by the one full implementation. Once a handler
has started work it does not defer: domain errors it raises are rendered as problem+json by
the same function as the exception handlers use, so is a database out of reach (503
`database_unavailable`, docs/adr/0019), anything else is a 500 as usual.

`tests/foundation/test_lean_routes.py` checks the mechanism; each lean route's tests run
their requests against the app with and without it and compare the answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from fastapi import FastAPI
from starlette._utils import get_route_path
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import AppError
from shared.web.problems import app_error_response, database_refusal

MAX_LEAN_BODY = 64 * 1024  # larger bodies go to the full route (lean bodies are small)


@dataclass
class LeanRequest:
    """What a lean handler sees: the app, the first value of each header (names in lower
    case), the raw query string, the whole body and the path's `{parameters}`."""

    app: FastAPI
    scope: Scope
    headers: dict[str, str]
    query: bytes
    body: bytes
    path_params: dict[str, str] = field(default_factory=dict)


Handler = Callable[[LeanRequest], Awaitable[Response | None]]


def _headers(scope: Scope) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1")
        if key not in found:
            found[key] = value.decode("latin-1")
    return found


@dataclass(frozen=True)
class RouteTemplate:
    """A lean route's path, e.g. `/v1/webhooks/calcom/{company_id}`; also what
    `scope["route"]` holds for a lean answer (metrics and spans are named by its `path`)."""

    path: str

    @cached_property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.path.split("/"))

    def match(self, path: str) -> dict[str, str] | None:
        """The parameters when `path` matches (a parameter is one non-empty segment, as
        Starlette's `{name}` is), else None."""
        parts = path.split("/")
        if len(parts) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for pattern, part in zip(self.segments, parts, strict=True):
            if pattern.startswith("{") and pattern.endswith("}"):
                if not part:
                    return None
                params[pattern[1:-1]] = part
            elif pattern != part:
                return None
        return params


class LeanRoutes:
    """Pure ASGI middleware: requests whose method and path have a lean handler go to it
    first (fixed paths by one dict lookup, templates by matching in turn)."""

    def __init__(
        self, app: ASGIApp, *, fastapi_app: FastAPI, handlers: Mapping[tuple[str, str], Handler]
    ) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.fixed: dict[tuple[str, str], tuple[Handler, RouteTemplate]] = {}
        self.templated: list[tuple[str, RouteTemplate, Handler]] = []
        for (method, path), handler in handlers.items():
            template = RouteTemplate(path)
            if "{" in path:
                self.templated.append((method, template, handler))
            else:
                self.fixed[(method, path)] = (handler, template)

    def _find(self, method: str, path: str) -> tuple[Handler, RouteTemplate, dict[str, str]] | None:
        found = self.fixed.get((method, path))
        if found is not None:
            return found[0], found[1], {}
        for wanted, template, handler in self.templated:
            if wanted == method:
                params = template.match(path)
                if params is not None:
                    return handler, template, params
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = None
        if scope["type"] == "http":
            # Matched as Starlette's router matches: the path below the app's root_path.
            found = self._find(scope["method"], get_route_path(scope))
        if found is None:
            await self.app(scope, receive, send)
            return
        handler, template, params = found
        messages, complete = await _read_body(receive)
        if complete:
            body = b"".join(message.get("body", b"") for message in messages)
            request = LeanRequest(
                self.fastapi_app,
                scope,
                _headers(scope),
                scope.get("query_string", b""),
                body,
                params,
            )
            try:
                response = await handler(request)
            except AppError as exc:
                response = app_error_response(exc)
            except Exception as exc:
                # The database out of reach: 503 as the FastAPI routes answer (ADR 0019).
                scope["route"] = template
                response = database_refusal(scope, exc)
                if response is None:
                    raise
            if response is not None:
                scope["route"] = template
                scope["path_params"] = params
                await response(scope, receive, send)
                return
        await self.app(scope, _replay(messages, receive), send)


async def _read_body(receive: Receive) -> tuple[list[Message], bool]:
    """The request's body messages, up to MAX_LEAN_BODY bytes; (messages, whole body read)."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, False  # a disconnect: the full route sees it too
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            return messages, True
        if size > MAX_LEAN_BODY:
            return messages, False


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """`receive` that first hands out the messages already read."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


def install(app: FastAPI, handlers: Mapping[tuple[str, str], Handler]) -> None:
    """Add the lean handlers, keyed by method and the route's path (its template), as the
    innermost middleware (inside correlation, metrics, traces).

    Call it before the other middleware is added: Starlette wraps the last one added outermost.
    """
    app.add_middleware(LeanRoutes, fastapi_app=app, handlers=handlers)
