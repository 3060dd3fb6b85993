"""`appointments run`: the four services and three workers as child processes of one supervisor.

The supervisor starts an embedded Redis when REDIS_URL is unset, starts every child with the
same DATABASE_URL and REDIS_URL, and then only watches. SIGINT (Ctrl-C), SIGTERM or SIGHUP
stop everything: SIGTERM to every child, up to 10 s of grace, SIGKILL for stragglers, then the
embedded Redis; exit 0. A child that exits on its own takes the others down too; exit 1.
Children share the supervisor's process group, so a terminal's Ctrl-C or `kill -- -PGID`
reaches them even if the supervisor itself is killed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, cast

from shared.config import Settings
from shared.redis import EmbeddedRedis

HOST = "127.0.0.1"
STOP_TIMEOUT_S = 10.0
# Longer than any client's idle-connection expiry (httpx: 5 s, load balancers: 60 s): with
# uvicorn's default of 5 s a client reusing an idle connection races the server closing it
# and reads a reset instead of an answer.
KEEP_ALIVE_S = 75
POLL_INTERVAL_S = 0.2
READY_TIMEOUT_S = 60.0
DEFAULT_REDIS_DIR = Path("var/redis")
EMBEDDED_URL_FILE = "url"  # in the Redis dir while the embedded Redis runs

# (service, ASGI app factory); the policy service has no worker.
SERVICES = (
    ("booking", "services.booking.app:create"),
    ("policy", "services.policy.app:create"),
    ("webhooks", "services.webhooks.app:create"),
    ("notifications", "services.notifications.app:create"),
)
WORKERS = ("booking", "webhooks", "notifications")
EXIT_STOPPED, EXIT_CHILD_DIED, EXIT_PORT_BUSY = 0, 1, 2


def say(message: str) -> None:
    print(f"[appointments run] {message}", flush=True)


def service_ports(settings: Settings) -> dict[str, int]:
    return {
        "booking": settings.booking_port,
        "policy": settings.policy_port,
        "webhooks": settings.webhooks_port,
        "notifications": settings.notifications_port,
    }


def docs_urls(settings: Settings) -> dict[str, str]:
    return {name: f"http://{HOST}:{port}/docs" for name, port in service_ports(settings).items()}


def child_commands(settings: Settings) -> dict[str, list[str]]:
    """The argv of every child, by name (`booking`, ..., `booking-worker`, ...)."""
    ports = service_ports(settings)
    commands = {name: _uvicorn(factory, ports[name]) for name, factory in SERVICES}
    for name in WORKERS:
        commands[f"{name}-worker"] = [
            sys.executable,
            "-m",
            "arq",
            f"services.{name}.worker.WorkerSettings",
        ]
    return commands


def _uvicorn(factory: str, port: int) -> list[str]:
    argv = [sys.executable, "-m", "uvicorn", "--factory", factory]
    argv += ["--host", HOST, "--port", str(port)]
    # Below STOP_TIMEOUT_S, so open connections cannot turn a stop into a SIGKILL.
    argv += ["--timeout-graceful-shutdown", "5"]
    argv += ["--timeout-keep-alive", str(KEEP_ALIVE_S)]
    return argv


def worker_metrics_ports(settings: Settings) -> dict[str, int]:
    """Each worker's metrics port, by child name: WORKER_METRICS_PORT + 1, + 2, + 3 (all 0
    when it is 0), so the three workers on one machine do not compete for one port."""
    base = settings.worker_metrics_port
    return {
        f"{name}-worker": base + offset if base and base + offset <= 65535 else 0
        for offset, name in enumerate(WORKERS, start=1)
    }


def child_overrides(settings: Settings) -> dict[str, dict[str, str]]:
    """Per-child additions to the shared environment: the workers' metrics ports, on the
    loopback like the services."""
    return {
        name: {"WORKER_METRICS_PORT": str(port), "WORKER_METRICS_HOST": HOST}
        for name, port in worker_metrics_ports(settings).items()
    }


def child_env(settings: Settings, redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = settings.database_url
    env["REDIS_URL"] = redis_url
    env["PYTHONUNBUFFERED"] = "1"
    default_policy_url = Settings.model_fields["policy_service_url"].default
    if "POLICY_SERVICE_URL" not in os.environ and settings.policy_service_url == default_policy_url:
        # Follow a moved policy port (POLICY_PORT) unless the URL was configured explicitly.
        env["POLICY_SERVICE_URL"] = f"http://{HOST}:{settings.policy_port}"
    return env


def busy_ports(ports: Mapping[str, int]) -> list[str]:
    """Human-readable problems with the ports: taken by another process, or given twice."""
    problems = []
    seen: dict[int, str] = {}
    for name, port in ports.items():
        if port in seen:
            problems.append(f"{name} and {seen[port]} both want port {port}")
            continue
        seen[port] = name
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, port))
            except OSError as exc:
                problems.append(f"{name}: port {port} is not free ({exc.strerror})")
    return problems


class StopSignal:
    """Records SIGINT/SIGTERM/SIGHUP instead of raising, so shutdown runs in one place."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, object] = {}

    def __enter__(self) -> StopSignal:
        for sig in self.SIGNALS:
            if sig == signal.SIGHUP and signal.getsignal(sig) == signal.SIG_IGN:
                continue  # started with nohup: keep running when the terminal goes away
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signal.Signals(signum)


@dataclass
class Supervisor:
    """Starts named child processes, reports the first to exit, and stops them all."""

    commands: Mapping[str, Sequence[str]]
    env: Mapping[str, str]
    overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, init=False)

    def start(self) -> None:
        for name, argv in self.commands.items():
            env = {**self.env, **self.overrides.get(name, {})}
            # Output is inherited: every child logs straight to our stdout/stderr.
            self.children[name] = subprocess.Popen(argv, env=env)  # noqa: S603
            say(f"started {name} (pid {self.children[name].pid})")

    def exited(self) -> tuple[str, int] | None:
        """The first child found to have exited, with its exit code, else None."""
        for name, proc in self.children.items():
            code = proc.poll()
            if code is not None:
                return name, code
        return None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM to every live child, wait up to `timeout` in total, then SIGKILL the rest."""
        running = {name: p for name, p in self.children.items() if p.poll() is None}
        for proc in running.values():
            proc.terminate()
        deadline = time.monotonic() + timeout
        for name, proc in running.items():
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{name} (pid {proc.pid}) ignored SIGTERM for {timeout:g} s: SIGKILL")
                proc.kill()
                proc.wait()


class Readiness:
    """Announces once that every service answers GET /health/ready with 200."""

    def __init__(self, ports: Mapping[str, int]) -> None:
        self.urls = {name: f"http://{HOST}:{port}/health/ready" for name, port in ports.items()}
        self.pending = set(self.urls)
        self.started = time.monotonic()
        # No proxies: these are loopback calls, whatever HTTP_PROXY says.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def check(self) -> None:
        if not self.pending:
            return
        for name in sorted(self.pending):
            try:
                with self._opener.open(self.urls[name], timeout=0.5) as response:
                    if response.status == 200:
                        self.pending.discard(name)
            except OSError:
                pass
        if not self.pending:
            say(f"all services ready after {time.monotonic() - self.started:.1f} s")
        elif time.monotonic() - self.started > READY_TIMEOUT_S:
            say(f"still not ready after {READY_TIMEOUT_S:g} s: {', '.join(sorted(self.pending))}")
            self.pending.clear()


def _redis_pid(url: str) -> int:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        info = cast("dict[str, Any]", client.info("server"))
        return int(info["process_id"])
    finally:
        client.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run(
    settings: Settings,
    redis_dir: Path = DEFAULT_REDIS_DIR,
    prepare: Callable[[Settings], Settings] | None = None,
) -> int:
    """Run everything in the foreground until a stop signal (0) or a child's death (1).

    `prepare` runs once the ports are known to be free, before anything starts.
    """
    problems = busy_ports(service_ports(settings))
    if problems:
        for problem in problems:
            say(f"cannot start: {problem}")
        say("set BOOKING_PORT, POLICY_PORT, WEBHOOKS_PORT or NOTIFICATIONS_PORT to other ports")
        return EXIT_PORT_BUSY
    if prepare is not None:
        settings = prepare(settings)

    embedded: EmbeddedRedis | None = None
    supervisor: Supervisor | None = None
    with StopSignal() as stop:
        try:
            redis_url = settings.redis_url
            redis_pid: int | None = None
            if not redis_url:
                embedded = EmbeddedRedis(redis_dir)
                redis_url = embedded.start()
                try:
                    redis_pid = _redis_pid(redis_url)
                except Exception as exc:
                    say(f"the embedded Redis does not answer on {redis_url}: {exc}")
                    say(f"is a redis-server left over from an earlier run in {redis_dir}?")
                    return EXIT_CHILD_DIED
                say(f"embedded Redis on {redis_url} (pid {redis_pid}, data in {redis_dir})")
                # For `appointments revoke-api-key`, to tell the services at once.
                (redis_dir / EMBEDDED_URL_FILE).write_text(redis_url + "\n", encoding="ascii")
            if stop.received:
                return EXIT_STOPPED

            supervisor = Supervisor(
                child_commands(settings),
                child_env(settings, redis_url),
                child_overrides(settings),
            )
            supervisor.start()
            for name, url in docs_urls(settings).items():
                say(f"{name:<14} {url}")
            for name, port in worker_metrics_ports(settings).items():
                if port:
                    say(f"{name:<21} http://{HOST}:{port}/metrics")
            say("press Ctrl-C to stop")

            readiness = Readiness(service_ports(settings))
            while stop.received is None:
                exited = supervisor.exited()
                # A terminal's Ctrl-C also reaches the children: their exit is then expected.
                if exited is not None and stop.received is None:
                    say(f"{exited[0]} exited unexpectedly (code {exited[1]}): stopping the rest")
                    return EXIT_CHILD_DIED
                if redis_pid is not None and not _alive(redis_pid):
                    say(f"the embedded Redis (pid {redis_pid}) died: stopping")
                    return EXIT_CHILD_DIED
                readiness.check()
                time.sleep(POLL_INTERVAL_S)
            say(f"{stop.received.name} received: stopping")
            return EXIT_STOPPED
        finally:
            if supervisor is not None:
                supervisor.stop()
            if embedded is not None:
                (redis_dir / EMBEDDED_URL_FILE).unlink(missing_ok=True)
                embedded.stop()
            say("stopped")
