"""A fake SMS/WhatsApp gateway: a real HTTP server (uvicorn in a background thread) speaking
the provider API of services/notifications/channels/http_provider.py, strict about our side.

    async with FakeMessagingProvider(token="t0k") as fake:   # or `with ...`
        adapter = HttpMessagingAdapter("sms", fake.url, "t0k", http, timeout_s=1)
        ...
        [sms] = fake.messages
        assert sms.to == "+491701234567"

It checks the bearer token (401), the Idempotency-Key header (400 when missing) and the JSON
body (422: an object with exactly `channel` sms|whatsapp, `to` in E.164, a non-empty `body`
and optionally a string `sender`); the same key again answers 200 with the first id and sends
nothing (the same key with a different body: 422, as Stripe-style gateways do).

Switches: `fail_next(n, status=503, retry_after=None)` (the next n requests answer `status`
before anything is checked or recorded), `down()` / `up()` (stop listening on the port /
listen again), `slow(seconds)` (sleep before handling each request; a request the client gave
up on meanwhile is still handled, as a real gateway would: the ambiguous case the
Idempotency-Key exists for). `calls` counts the requests that reached the app.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.threaded_server import ThreadedServer

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
FIELDS = frozenset({"channel", "to", "body", "sender"})


@dataclass(frozen=True)
class ReceivedMessage:
    id: str
    channel: str
    to: str
    body: str
    key: str
    sender: str | None
    received_at: datetime


@dataclass
class _State:
    token: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    messages: list[ReceivedMessage] = field(default_factory=list)
    by_key: dict[str, tuple[dict[str, Any], ReceivedMessage]] = field(default_factory=dict)
    failures: list[tuple[int, str | None, str]] = field(default_factory=list)
    slow_s: float = 0.0
    calls: int = 0
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


def _error(status: int, text: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": text}, status_code=status, headers=headers)


def _problems(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["body must be a JSON object"]
    problems = [f"unknown field {name!r}" for name in sorted(set(body) - FIELDS)]
    problems += [
        f"missing field {name!r}" for name in ("channel", "to", "body") if name not in body
    ]
    if "channel" in body and body["channel"] not in ("sms", "whatsapp"):
        problems.append("channel must be 'sms' or 'whatsapp'")
    if "to" in body and not (isinstance(body["to"], str) and E164.fullmatch(body["to"])):
        problems.append("to must be an E.164 number such as +491701234567")
    if "body" in body and not (isinstance(body["body"], str) and body["body"].strip()):
        problems.append("body must be a non-empty string")
    if "sender" in body and not (isinstance(body["sender"], str) and body["sender"].strip()):
        problems.append("sender must be a non-empty string when given")
    return problems


def _app(state: _State) -> Starlette:
    async def create_message(request: Request) -> JSONResponse:
        raw = await request.body()  # before any delay: a gateway has the request once sent
        with state.lock:
            state.calls += 1
            delay = state.slow_s
        if delay:
            await asyncio.sleep(delay)
        with state.lock:
            failure = state.failures.pop(0) if state.failures else None
        if failure is not None:
            status, retry_after, text = failure
            headers = {"Retry-After": retry_after} if retry_after is not None else None
            return _error(status, text, headers)
        if request.headers.get("authorization") != f"Bearer {state.token}":
            return _error(401, "invalid or missing bearer token")
        key = request.headers.get("idempotency-key", "")
        if not key.strip():
            return _error(400, "Idempotency-Key header is required")
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(422, "body is not JSON")
        problems = _problems(body)
        if problems:
            return _error(422, "; ".join(problems))
        with state.lock:
            if key in state.by_key:
                first_body, first = state.by_key[key]
                if first_body != body:
                    return _error(422, "Idempotency-Key reused with a different request")
                return JSONResponse({"id": first.id, "status": "queued"}, status_code=200)
            message = ReceivedMessage(
                id=f"msg_{next(state.ids):06d}",
                channel=body["channel"],
                to=body["to"],
                body=body["body"],
                key=key,
                sender=body.get("sender"),
                received_at=datetime.now(UTC),
            )
            state.messages.append(message)
            state.by_key[key] = (body, message)
        return JSONResponse({"id": message.id, "status": "queued"}, status_code=201)

    return Starlette(routes=[Route("/v1/messages", create_message, methods=["POST"])])


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


class FakeMessagingProvider:
    """The fake gateway on 127.0.0.1; its port stays the same across down()/up()."""

    def __init__(self, token: str = "test-token") -> None:
        self.token = token
        self._state = _State(token=token)
        self._app = _app(self._state)
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self._runner = ThreadedServer(config, "fake messaging provider")
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        sock = _bind(self.port)
        self.port = sock.getsockname()[1]
        self._runner.start(sock)

    def stop(self) -> None:
        self._runner.stop()

    def __enter__(self) -> FakeMessagingProvider:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FakeMessagingProvider:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    # -- switches (thread-safe; call from sync code or via the event loop alike) ------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        retry_after: float | str | None = None,
        text: str = "injected failure",
    ) -> None:
        """The next `n` requests answer `status` with `{"error": text}` (and Retry-After when
        given: seconds or an HTTP date). A 2xx status makes an answer without an id."""
        if retry_after is None or isinstance(retry_after, str):
            header = retry_after
        else:
            header = f"{retry_after:g}"
        with self._state.lock:
            self._state.failures = [(status, header, text)] * n

    def down(self) -> None:
        """Stop listening: connections are refused until up()."""
        self.stop()

    def up(self) -> None:
        """Listen again on the same port."""
        if not self._runner.running:
            self.start()

    def slow(self, seconds: float) -> None:
        """Sleep `seconds` before handling each request (0: answer at once)."""
        with self._state.lock:
            self._state.slow_s = seconds

    # -- what arrived ----------------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._state.lock:
            return list(self._state.messages)

    @property
    def calls(self) -> int:
        with self._state.lock:
            return self._state.calls

    def clear(self) -> None:
        """Forget messages, keys, counters and switches."""
        with self._state.lock:
            self._state.messages.clear()
            self._state.by_key.clear()
            self._state.failures.clear()
            self._state.slow_s = 0.0
            self._state.calls = 0
