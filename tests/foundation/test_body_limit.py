"""The body limit of every service (shared/web/body_limit.py): 413 problem+json before parsing or
auth, also for chunked bodies, and the app behind it never sees more than the limit.

The mechanism is checked on a tiny ASGI app driven message by message; the four services
in-process (httpx over ASGI, a generator body is sent chunked, without Content-Length); one
service over a real socket (uvicorn).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared.config import Settings
from shared.web.body_limit import BodyLimit
from tests.conftest import Services
from tests.support.servers import ServerGroup

MIB = 1024 * 1024
LIMIT = 1024


async def chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """`total` bytes in chunks of `size`: httpx sends it chunked, with no Content-Length."""
    sent = 0
    while sent < total:
        part = min(size, total - sent)
        sent += part
        yield b"x" * part


class Echo:
    """A tiny ASGI app that reads its whole body and answers its length; records every
    message its `receive` handed out."""

    def __init__(self) -> None:
        self.calls = 0
        self.received: list[dict[str, Any]] = []

    @property
    def body_bytes(self) -> int:
        return sum(len(m.get("body", b"")) for m in self.received)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        while True:
            message = await receive()
            self.received.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(self.body_bytes).encode()})


async def drive(
    app: Any, body_messages: list[dict[str, Any]], headers: list[tuple[bytes, bytes]] | None = None
) -> tuple[int, bytes, dict[bytes, bytes], int]:
    """One request straight through ASGI: (status, body, headers, messages the server still
    had unread)."""
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers or []}
    pending = list(body_messages)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body, dict(start["headers"]), len(pending)


def parts(sizes: list[int]) -> list[dict[str, Any]]:
    last = len(sizes) - 1
    return [
        {"type": "http.request", "body": b"x" * size, "more_body": i < last}
        for i, size in enumerate(sizes)
    ]


async def test_a_chunked_body_of_exactly_the_limit_reaches_the_app_whole() -> None:
    echo = Echo()
    status, body, _, _ = await drive(BodyLimit(echo, max_bytes=LIMIT), parts([500, 500, 24]))
    assert (status, body, echo.body_bytes) == (200, b"1024", 1024)


async def test_a_chunked_body_one_byte_over_is_refused_before_the_app_runs() -> None:
    echo = Echo()
    status, body, headers, unread = await drive(
        BodyLimit(echo, max_bytes=LIMIT), parts([1000, 25, 5000, 5000])
    )
    assert status == 413
    assert headers[b"content-type"] == b"application/problem+json"
    assert httpx.Response(413, content=body).json()["code"] == "payload_too_large"
    assert echo.calls == 0
    assert unread == 2  # answered as soon as the limit was crossed, not at the end


async def test_a_declared_length_over_the_limit_is_refused_without_reading() -> None:
    echo = Echo()
    headers = [(b"content-length", str(2 * LIMIT).encode())]
    status, _, _, unread = await drive(
        BodyLimit(echo, max_bytes=LIMIT), parts([LIMIT, LIMIT]), headers
    )
    assert (status, echo.calls, unread) == (413, 0, 2)


async def test_a_malformed_content_length_is_a_bad_request() -> None:
    echo = Echo()
    status, body, _, _ = await drive(
        BodyLimit(echo, max_bytes=LIMIT), parts([10]), [(b"content-length", b"-1")]
    )
    assert status == 400
    assert httpx.Response(400, content=body).json()["code"] == "bad_request"
    assert echo.calls == 0


async def test_a_body_outgrowing_its_content_length_never_reaches_the_app_past_the_limit() -> None:
    """A server that lets the body run past its declared length (the declared one is small):
    the app's receive stops at the limit with a disconnect, and the client gets the 413."""
    echo = Echo()
    status, _, _, _ = await drive(
        BodyLimit(echo, max_bytes=LIMIT), parts([600, 600, 600]), [(b"content-length", b"10")]
    )
    assert status == 413
    assert echo.body_bytes == 600  # the chunk that crossed the limit was never handed out
    assert echo.received[-1] == {"type": "http.disconnect"}


# -- the four services --------------------------------------------------------------------------

# A route of each service that needs an API key (and one path no service has).
GUARDED = [
    ("booking", "POST", "/v1/appointments"),
    ("booking", "POST", "/v1/retell/functions/book_appointment"),
    ("policy", "POST", "/v1/policies/evaluate"),
    ("webhooks", "POST", "/v1/webhooks/events/0b6c2f1e-7d4a-4e8b-9c3f-1a2b3c4d5e6f/replay"),
    ("webhooks", "POST", "/v1/webhooks/calcom/0b6c2f1e-7d4a-4e8b-9c3f-1a2b3c4d5e6f"),
    ("notifications", "PUT", "/v1/notification-templates/booking_confirmed/email/de"),
    ("notifications", "GET", "/v1/notification-templates/booking_confirmed/email/de"),
    ("booking", "POST", "/no/such/path"),
]


@pytest.mark.parametrize(("service", "method", "path"), GUARDED)
async def test_two_mib_chunked_to_every_service_is_413_not_401(
    services: Services, service: str, method: str, path: str
) -> None:
    client = services.clients[service]
    unauthenticated = await client.request(method, path, content=b"{}")
    assert unauthenticated.status_code in (401, 404, 405)  # what the route says without a key
    answer = await client.request(method, path, content=chunks(2 * MIB))
    assert answer.status_code == 413, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "payload_too_large"
    assert answer.headers["x-correlation-id"]


@pytest.mark.parametrize("service", ["booking", "policy", "webhooks", "notifications"])
async def test_a_declared_two_mib_is_413_and_the_limit_itself_passes(
    services: Services, service: str
) -> None:
    client = services.clients[service]
    declared = await client.post("/v1/anything", content=b"x" * (2 * MIB))
    assert declared.status_code == 413
    assert declared.json()["code"] == "payload_too_large"
    at_limit = await client.post("/v1/anything", content=chunks(MIB))
    assert at_limit.status_code == 404  # through the limit, to the router
    declared_at_limit = await client.post("/v1/anything", content=b"x" * MIB)
    assert declared_at_limit.status_code == 404
    over = await client.post("/v1/anything", content=chunks(MIB + 1))
    assert over.status_code == 413


async def test_a_chunked_body_at_the_limit_reaches_body_parsing(services: Services) -> None:
    """Exactly the limit is parsed as usual (here: not JSON, so 422 from the route)."""
    client = services.clients["booking"]
    answer = await client.post(
        "/v1/appointments", content=chunks(MIB), headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422
    assert answer.json()["code"] == "validation_error"


# -- over a real socket -------------------------------------------------------------------------


@pytest.fixture
async def policy_server(settings: Settings) -> AsyncIterator[str]:
    env = {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url or ""}
    async with ServerGroup("services.policy.app:create", 1, env) as group:
        yield group.urls[0]


async def test_over_a_real_socket_a_chunked_body_is_refused_and_the_server_lives_on(
    policy_server: str,
) -> None:
    async with httpx.AsyncClient(base_url=policy_server, timeout=30) as client:
        chunked = await client.post("/v1/policies/evaluate", content=chunks(2 * MIB))
        assert chunked.status_code == 413
        assert chunked.json()["code"] == "payload_too_large"
        declared = await client.post("/v1/policies/evaluate", content=b"x" * (2 * MIB))
        assert declared.status_code == 413
        unauthenticated = await client.post("/v1/policies/evaluate", json={})
        assert unauthenticated.status_code == 401
        assert (await client.get("/health/live")).status_code == 200


async def test_over_a_real_socket_the_413_comes_before_the_body_ends(
    policy_server: str,
) -> None:
    """2 MiB of a chunked body that never ends (no terminating chunk): the server answers 413
    anyway, so it did not wait for the whole body."""
    host, port = policy_server.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            b"POST /v1/policies/evaluate HTTP/1.1\r\nHost: x\r\n"
            b"Transfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
        )
        chunk = b"x" * 65536
        for _ in range(32):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=30)
        assert status_line.startswith(b"HTTP/1.1 413 ")
    finally:
        writer.close()
