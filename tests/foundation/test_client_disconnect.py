"""A caller that hangs up before its body arrives (the agent's own timeout, a dropped mobile
connection) is no server error: every route that takes a body answers 400
`client_disconnected` or refuses earlier, never 500, and logs no traceback."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from shared.db.engine import Database
from tests.booking.agent_support import enable_retell
from tests.conftest import Services
from tests.support.factories import create_salon
from tests.support.routes import api_routes

BODY_METHODS = {"POST", "PUT", "PATCH"}


async def _send_cut_off(app: Any, method: str, path: str, headers: dict[str, str]) -> int:
    """The ASGI request with a first chunk of body and then the client gone; the status the
    app answers (0 when it answers nothing)."""
    incoming = [
        {"type": "http.request", "body": b'{"a": ', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"test"),
            (b"content-type", b"application/json"),
            (b"content-length", b"1000"),
            *((k.lower().encode(), v.encode()) for k, v in headers.items()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    await app(scope, receive, send)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    return int(starts[0]["status"]) if starts else 0


async def test_every_route_with_a_body_survives_a_caller_hanging_up(
    services: Services, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    salon = await create_salon(db)
    await enable_retell(db, salon)
    statuses: dict[tuple[str, str, str], int] = {}
    with caplog.at_level(logging.INFO):
        for name, app in services.apps.items():
            for route in api_routes(app):
                path = re.sub(r"\{[^}]+\}", "x1", route.path)
                if route.path == "/v1/retell/functions/{name}":
                    path = "/v1/retell/functions/book_appointment"
                for method in sorted(route.methods & BODY_METHODS):
                    status = await _send_cut_off(app, method, path, salon.headers)
                    statuses[(name, method, route.path)] = status
    assert len(statuses) >= 20, statuses
    assert not [key for key, status in statuses.items() if status >= 500 or status == 0], statuses
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [
        r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR
    ]
    # The routes that read the raw body themselves say why (the agent's functions, webhooks).
    agent = ("booking", "POST", "/v1/retell/functions/{name}")
    assert statuses[agent] == 400, statuses[agent]
    assert "client disconnected before sending its request" in caplog.text
