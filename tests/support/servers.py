"""Real server processes (uvicorn) of our apps, for multi-process tests; loopback only."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from shared.redis.connection import free_port
from tools.children import KEEP_ALIVE_S

ROOT = Path(__file__).resolve().parents[2]


def group_client(timeout: float = 60) -> httpx.AsyncClient:
    """A client for many concurrent requests spread over a group's processes: no limit on
    connections or idle connections, so httpcore never closes an idle connection to make room
    for another origin, nor a "surplus" one, while it is handed to a waiting request (encode/
    httpcore#1110: that request reads a reset, `httpx.ReadError`)."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    return httpx.AsyncClient(timeout=timeout, limits=limits)


async def post_once(client: httpx.AsyncClient, url: str, **kwargs: Any) -> httpx.Response:
    """POST a request the server deduplicates (an Idempotency-Key, a Retell call id), sent
    again once if the connection broke before an answer came back: what these tests examine
    is the server's fence, which the repeat cannot get past, not the client's connection
    pool (see `group_client`)."""
    try:
        return await client.post(url, **kwargs)
    except httpx.TransportError:
        return await client.post(url, **kwargs)


class ServerGroup:
    """N processes of one app factory on one database, each on its own port."""

    def __init__(self, factory: str, count: int, env: Mapping[str, str]) -> None:
        self.factory = factory
        self.count = count
        self.env = {**os.environ, **env, "LOG_LEVEL": "WARNING", "LOG_JSON": "false"}
        self.ports: list[int] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    async def __aenter__(self) -> ServerGroup:
        for _ in range(self.count):
            port = free_port()
            self.ports.append(port)
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "--factory",
                        self.factory,
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--log-level",
                        "warning",
                        "--no-access-log",
                        "--timeout-keep-alive",
                        str(KEEP_ALIVE_S),
                    ],
                    cwd=ROOT,
                    env=self.env,
                    start_new_session=True,
                )
            )
        await self._wait_ready(timeout=30)
        return self

    async def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as client:
            for url, proc in zip(self.urls, self.procs, strict=True):
                while True:
                    if proc.poll() is not None:
                        raise RuntimeError(f"{self.factory} exited with {proc.returncode}")
                    try:
                        if (await client.get(f"{url}/health/ready")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{url} not ready within {timeout} s")
                    await asyncio.sleep(0.1)

    async def __aexit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
