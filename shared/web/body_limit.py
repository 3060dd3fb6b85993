"""The request-body limit of every service (MAX_BODY_BYTES, 1 MiB by default): 413 problem+json
before anything parses the body or looks at the caller's key.

A pure ASGI middleware, inside correlation ids, metrics and traces (so a refusal is counted
and carries its id) and outside everything that reads a body or authenticates: lean routes,
FastAPI's routing, body parsing, dependencies (docs/adr/0013-edges.md).

- A declared `Content-Length` above the limit is refused at once; nothing is read.
- A body without one (chunked) is read ahead, counting bytes as they arrive, up to the limit:
  crossing it answers 413 at once, before the app runs, so an unknown path or a route that
  never reads its body (a GET, a 401 for a missing key) is refused all the same. A body
  within the limit is handed to the app unchanged.
- In every case the app's `receive` is counted too, so the app never sees more than the
  limit, even from a server that lets a body outgrow its Content-Length: if it does, the
  app sees a disconnect and the client a 413 (when no answer has started yet).

The server drains whatever the client still sends after the 413 (uvicorn keeps the
connection), so a client that writes its whole body before reading gets the answer instead
of a reset connection.
"""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import BadRequest, PayloadTooLarge
from shared.web.problems import app_error_response

log = logging.getLogger(__name__)

DISCONNECT: Message = {"type": "http.disconnect"}


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body exceeds the limit of {limit} bytes.", limit=limit)


def _declared_length(scope: Scope) -> int | None:
    """The Content-Length header's value (None: absent); BadRequest when malformed."""
    values = [value for name, value in scope.get("headers", []) if name == b"content-length"]
    if not values:
        return None
    lengths = {value.strip() for value in values}
    if len(lengths) != 1 or not next(iter(lengths)).isdigit():
        raise BadRequest("The Content-Length header is malformed.")
    return int(next(iter(lengths)))


class BodyLimit:
    """Refuse request bodies larger than `max_bytes` with 413 problem+json."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            declared = _declared_length(scope)
        except BadRequest as exc:
            await app_error_response(exc)(scope, receive, send)
            return
        if declared is not None and declared > self.max_bytes:
            await app_error_response(too_large(self.max_bytes))(scope, receive, send)
            return
        if declared is None:
            read = await self._read_ahead(receive)
            if read is None:
                await app_error_response(too_large(self.max_bytes))(scope, receive, send)
                return
            receive = _replay(read, receive)
        await _Guard(self.app, self.max_bytes, scope, receive, send).run()

    async def _read_ahead(self, receive: Receive) -> list[Message] | None:
        """The body's messages when it ends (or the client leaves) within the limit; None as
        soon as it crosses the limit."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                messages.append(message)  # a disconnect: the app sees it in turn
                return messages
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return None
            messages.append(message)
            if not message.get("more_body", False):
                return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


class _Guard:
    """One request through the app with its `receive` counted and its `send` watched."""

    def __init__(self, app: ASGIApp, limit: int, scope: Scope, receive: Receive, send: Send):
        self.app = app
        self.limit = limit
        self.scope = scope
        self.receive = receive
        self.send = send
        self.size = 0
        self.over = False  # the body crossed the limit: the app gets disconnects only
        self.started = False  # the app began its answer
        self.answered = False  # we answered 413 in its place: its messages are dropped

    async def counted_receive(self) -> Message:
        if self.over:
            return DISCONNECT
        message = await self.receive()
        if message["type"] == "http.request":
            self.size += len(message.get("body", b""))
            if self.size > self.limit:
                self.over = True
                if not self.started:
                    self.answered = True
                    await app_error_response(too_large(self.limit))(
                        self.scope, self.receive, self.send
                    )
                return DISCONNECT
        return message

    async def watched_send(self, message: Message) -> None:
        if self.answered:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)

    async def run(self) -> None:
        try:
            await self.app(self.scope, self.counted_receive, self.watched_send)
        except Exception:
            if not self.answered:
                raise
            # The app failed on the disconnect it was handed after our 413: nothing to add.
            log.debug("app failed after a 413 for an oversized body", exc_info=True)
