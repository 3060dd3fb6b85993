"""A second, throw-away `mariadbd` for the database-outage tests (issue 14, ADR 0019).

Its own free port on 127.0.0.1, its own data directory (`mariadb-install-db` once per test
session, about 2 s), migrated with the real Alembic migrations; the tests stop it (SIGTERM:
a clean shutdown that kills open connections, or SIGKILL: a crash with InnoDB recovery at the
next start) and start it again on the same port and data. The session fixture stops it for
good whatever happens.

Durability: `innodb_flush_log_at_trx_commit=2` writes the redo log to the OS at every commit
(a killed *process* loses no committed transaction; only a lost machine would) and
`innodb_flush_method=nosync` skips fsync: migrations take 3 s instead of 8. Atomicity, what the
tests check, is InnoDB's own in any setting.

Without `mariadbd` the tests skip, under CI=true they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.config import Settings
from shared.redis.connection import free_port
from tests.conftest import IN_CI, _run_in_thread
from tests.support.migrations import migrate

DATABASE = "appointments"
_SBIN = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin")


def _executable(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or next(
            (f"{d}/{name}" for d in _SBIN if os.access(f"{d}/{name}", os.X_OK)), None
        )
        if found:
            return found
    return None


class MariaDB:
    """One mariadbd process of ours: install, start, stop (SIGTERM) or kill (SIGKILL), start
    again on the same port and data directory."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        server = _executable("mariadbd", "mysqld")
        install = _executable("mariadb-install-db", "mysql_install_db")
        if server is None or install is None:
            raise FileNotFoundError("mariadbd / mariadb-install-db not found")
        self.server, self.install_db = server, install

    @property
    def url(self) -> str:
        return f"mysql+asyncmy://root@127.0.0.1:{self.port}/{DATABASE}"

    def _options(self) -> list[str]:
        return [
            "--innodb-buffer-pool-size=32M",
            "--innodb-log-file-size=8M",
            "--innodb-flush-log-at-trx-commit=2",
            "--innodb-flush-method=nosync",
            "--innodb-doublewrite=0",
            "--skip-log-bin",
            "--performance-schema=OFF",
            "--skip-name-resolve",
            "--max-connections=300",
            "--user=root",  # refused as root without it; ignored (with a note) otherwise
        ]

    def install(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                self.install_db,
                "--no-defaults",
                f"--datadir={self.data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *self._options(),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )

    def start(self, timeout_s: float = 30.0) -> float:
        """Start it and wait until it greets a client; the monotonic time it first did."""
        assert not self.alive, "already running"
        argv = [
            self.server,
            "--no-defaults",
            f"--datadir={self.data}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.directory / 'mariadb.sock'}",
            f"--pid-file={self.directory / 'mariadb.pid'}",
            f"--log-error={self.directory / f'error.{self.starts}.log'}",
            "--skip-grant-tables",  # root without a password from 127.0.0.1
            *self._options(),
        ]
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited with {self.proc.returncode}: {self.log()}")
            if self.greets():
                return time.monotonic()
            time.sleep(0.01)
        self.kill()
        raise RuntimeError(f"mariadbd did not start on port {self.port}: {self.log()}")

    def greets(self) -> bool:
        """The server accepts a TCP connection and sends its handshake packet (it serves)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.settimeout(0.5)
                header = sock.recv(5)
                return len(header) == 5 and header[4] == 10  # protocol version 10
        except OSError:
            return False

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM: a clean shutdown (open connections are killed); wait until it is gone."""
        self._signal(signal.SIGTERM, timeout_s)

    def kill(self) -> None:
        """SIGKILL: a crash; InnoDB recovers at the next start."""
        self._signal(signal.SIGKILL, 10.0)

    def _signal(self, sig: int, timeout_s: float) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        path = self.directory / f"error.{max(self.starts - 1, 0)}.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


async def create_database(server: MariaDB) -> None:
    engine = create_async_engine(f"mysql+asyncmy://root@127.0.0.1:{server.port}/")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f"CREATE DATABASE `{DATABASE}` CHARACTER SET utf8mb4"))
    finally:
        await engine.dispose()


_SERVER: MariaDB | None = None


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    """A running second MariaDB with the database `appointments` at head, shared by every
    module that imports this fixture (a test may stop it, and must start it again)."""
    global _SERVER
    if _SERVER is None:
        try:
            server = MariaDB(tmp_path_factory.mktemp("mariadb"))
        except FileNotFoundError as exc:
            if IN_CI:
                pytest.fail(f"{exc} (CI=true: required)", pytrace=False)
            pytest.skip(str(exc))
        server.install()
        server.start()
        try:
            _run_in_thread(_prepare(server))
        except BaseException:
            server.kill()
            raise
        _SERVER = server
    try:
        yield _SERVER
    finally:
        if _SERVER is not None:
            _SERVER.stop()
            _SERVER = None


async def _prepare(server: MariaDB) -> None:
    await create_database(server)
    await migrate(server.url, "upgrade", "head")


@contextlib.contextmanager
def running_again(server: MariaDB) -> Iterator[MariaDB]:
    """Start the server again on leaving, whatever the test did to it."""
    try:
        yield server
    finally:
        if not server.alive:
            server.start()


def outage_settings(server: MariaDB, redis_url: str, **update: object) -> Settings:
    """Settings of apps on the second server. The key cache outlives the test (300 s), so a
    key verified before the outage is honoured during it, as a warm replica's would be."""
    values: dict[str, object] = {
        "environment": "test",
        "database_url": server.url,
        "redis_url": redis_url,
        "log_json": False,
        "log_level": "WARNING",
        "allow_private_outbound_urls": True,
        "auth_cache_ttl_s": 300.0,
        "db_pool_size": 10,
        "db_max_overflow": 10,
        "raw_pool_size": 4,
    }
    values.update(update)
    return Settings(**values)  # type: ignore[arg-type]


QUEUES = ("arq:queue:booking", "arq:queue:notify", "arq:queue:webhooks")


@pytest.fixture(scope="module")
async def leave_queues_as_found(redis_url: str) -> AsyncIterator[None]:
    """Drop the jobs this module's apps enqueued (for rows of their own databases), so that no
    later test's worker meets them in the shared Redis database."""
    redis = Redis.from_url(redis_url)
    try:
        before = {queue: set(await redis.zrange(queue, 0, -1)) for queue in QUEUES}
        yield
        for queue in QUEUES:
            for member in set(await redis.zrange(queue, 0, -1)) - before[queue]:
                await redis.zrem(queue, member)
                await redis.delete(b"arq:job:" + member)
    finally:
        await redis.aclose()
