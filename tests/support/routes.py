"""The API routes of an app as (path, methods), whatever FastAPI version builds them.

FastAPI 0.165 keeps an included router as one lazy `_IncludedRouter` in `app.routes`, so
iterating `app.routes` for `APIRoute`s finds none of ours; `iter_route_contexts` yields
each effective route with its full path there."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import routing
from fastapi.routing import APIRoute


@dataclass(frozen=True)
class ApiRoute:
    path: str
    methods: frozenset[str]
    in_schema: bool


def api_routes(app: Any) -> Iterator[ApiRoute]:
    """Every API route (no plain Starlette routes or mounts), with its full path template."""
    contexts = getattr(routing, "iter_route_contexts", None)
    if contexts is None:  # FastAPI before 0.165: included routes are copied into app.routes
        for route in app.routes:
            if isinstance(route, APIRoute):
                yield ApiRoute(route.path, frozenset(route.methods), route.include_in_schema)
        return
    for context in contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            methods = frozenset(context.methods or ())
            yield ApiRoute(str(context.path), methods, bool(context.include_in_schema))
