"""A tiny HTTP server answering every request with one canned response (and recording the
request heads): a stand-in for a remote that answers something we must never echo."""

from __future__ import annotations

import asyncio
import json
from typing import Any


class CannedHttp:
    """`async with CannedHttp(400, {...}) as server:` listens on 127.0.0.1:`server.port`."""

    def __init__(self, status: int, body: dict[str, Any], reason: str = "Bad Request") -> None:
        self.status = status
        self.payload = json.dumps(body).encode()
        self.reason = reason
        self.heads: list[str] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head.decode("latin-1"))
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            if length:
                await reader.readexactly(length)
            writer.write(
                f"HTTP/1.1 {self.status} {self.reason}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(self.payload)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + self.payload
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> CannedHttp:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
