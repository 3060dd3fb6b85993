"""A uvicorn server in a daemon thread of the test process, on a socket bound beforehand
(so the port is known, and kept across a stop/start): how the fakes of third parties run."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn


class ThreadedServer:
    def __init__(self, config: uvicorn.Config, name: str) -> None:
        self.config = config
        self.name = name
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.server is not None

    def start(self, sock: socket.socket, timeout_s: float = 10.0) -> None:
        server = self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(timeout=10)
        self.server = self.thread = None
