"""`appointments run`: the four services and three workers as child processes of one supervisor.

The supervisor starts an embedded Redis when REDIS_URL is unset, starts every child with the
same DATABASE_URL and REDIS_URL, and then watches (ADR 0017). A child that exits on its own
(any exit code, or a signal) is started again after a backoff: 1 s, doubling up to 30 s, back
to 1 s once the child had run 60 s before it crashed. Each restart is logged and counted in
`appointments_child_restarts_total{child}` on SUPERVISOR_METRICS_PORT (9104, loopback). An
embedded Redis that dies is restarted alike, on its port (empty, as it never saves). Five
restarts of one child within 60 s are tolerated; its sixth crash within 60 s gives up:
everything is stopped, exit 3. SIGINT (Ctrl-C), SIGTERM or SIGHUP stop everything: a child
waiting for its restart is not restarted, every live child gets SIGTERM and up to 10 s of grace,
SIGKILL for stragglers, then the embedded Redis stops; exit 0. Children share the supervisor's
process group, so a terminal's Ctrl-C or `kill -- -PGID` reaches them even if the supervisor
itself is killed.

Test knobs (environment, undocumented for operators): RUNNER_BACKOFF_S, RUNNER_BACKOFF_MAX_S,
RUNNER_CRASH_WINDOW_S and RUNNER_HEALTHY_AFTER_S override the 1 s / 30 s / 60 s / 60 s above.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from threading import Thread
from types import FrameType
from typing import Any, cast
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, start_http_server

from shared.config import Settings
from shared.redis.connection import EmbeddedRedis

HOST = "127.0.0.1"
STOP_TIMEOUT_S = 10.0
# The workers' drain under `run` (WORKER_DRAIN_TIMEOUT_S, 25 s in Kubernetes) ends before
# STOP_TIMEOUT_S, so a stop lets a worker cancel and record what it has left, not a SIGKILL.
RUN_DRAIN_TIMEOUT_S = 8.0
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
EXIT_STOPPED, EXIT_CHILD_DIED, EXIT_PORT_BUSY, EXIT_GAVE_UP = 0, 1, 2, 3
# The restart policy (ADR 0017); RUNNER_* in the environment override them (test knobs).
BACKOFF_S = 1.0  # the delay before the first restart, doubled for each crash in a row
BACKOFF_MAX_S = 30.0
CRASH_WINDOW_S = 60.0  # MAX_CRASHES crashes of one child within this many seconds: give up
MAX_CRASHES = 6  # i.e. five restarts within the window are tolerated, the sixth crash is not
HEALTHY_AFTER_S = 60.0  # a child that ran this long before it crashed starts at BACKOFF_S again
REDIS_CHILD = "redis"  # the embedded Redis' name in log lines and the restart metric


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
        # Our worker entry point: outlives Redis/database outages, drains on SIGTERM (ADR 0018).
        commands[f"{name}-worker"] = [
            sys.executable,
            "-m",
            "shared.jobs.worker_main",
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
    drain_s = min(settings.worker_drain_timeout_s, RUN_DRAIN_TIMEOUT_S)
    env["WORKER_DRAIN_TIMEOUT_S"] = f"{drain_s:g}"
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


def describe_exit(code: int) -> str:
    """`exited with code 1`, `was killed by SIGKILL`: a Popen returncode in words."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


@dataclass(frozen=True)
class RestartPolicy:
    """When a crashed child starts again, and when the supervisor gives up (ADR 0017)."""

    backoff_s: float = BACKOFF_S
    backoff_max_s: float = BACKOFF_MAX_S
    crash_window_s: float = CRASH_WINDOW_S
    max_crashes: int = MAX_CRASHES
    healthy_after_s: float = HEALTHY_AFTER_S


class CrashHistory:
    """One child's crashes under a RestartPolicy. Pure: the caller passes the clock."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self.crashes: deque[float] = deque()  # within the last crash_window_s
        self.in_a_row = 0  # crashes since the child last ran healthy_after_s

    def crashed(self, at: float, ran_s: float) -> float | None:
        """Record a crash at `at` (monotonic seconds) ending a run of `ran_s` seconds. The
        delay before the next start: backoff_s doubled for each earlier crash in a row (a run
        of healthy_after_s ends the row), at most backoff_max_s; None when this is the
        max_crashes-th crash within crash_window_s (give up)."""
        policy = self.policy
        if ran_s >= policy.healthy_after_s:
            self.in_a_row = 0
        self.crashes.append(at)
        while self.crashes and self.crashes[0] <= at - policy.crash_window_s:
            self.crashes.popleft()
        if len(self.crashes) >= policy.max_crashes:
            return None
        delay = min(policy.backoff_max_s, policy.backoff_s * 2.0 ** min(self.in_a_row, 32))
        self.in_a_row += 1
        return delay


def restart_policy(environ: Mapping[str, str]) -> RestartPolicy:
    """The default policy, with the RUNNER_* test knobs that are set (ADR 0017)."""

    def seconds(variable: str, default: float) -> float:
        raw = environ.get(variable)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not 0 <= value < float("inf"):
            say(f"ignoring {variable}={raw!r}: not a number of seconds")
            return default
        return value

    return RestartPolicy(
        backoff_s=seconds("RUNNER_BACKOFF_S", BACKOFF_S),
        backoff_max_s=seconds("RUNNER_BACKOFF_MAX_S", BACKOFF_MAX_S),
        crash_window_s=seconds("RUNNER_CRASH_WINDOW_S", CRASH_WINDOW_S),
        healthy_after_s=seconds("RUNNER_HEALTHY_AFTER_S", HEALTHY_AFTER_S),
    )


RESTARTS_HELP = "Restarts of a child of `appointments run` after it exited on its own."


class Supervisor:
    """Starts named child processes, restarts those that exit on their own (`tick`), stops
    them all. Restarts are counted in `registry` (appointments_child_restarts_total{child})."""

    def __init__(
        self,
        commands: Mapping[str, Sequence[str]],
        env: Mapping[str, str],
        overrides: Mapping[str, Mapping[str, str]] | None = None,
        *,
        backoff_s: float = BACKOFF_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        crash_window_s: float = CRASH_WINDOW_S,
        max_crashes: int = MAX_CRASHES,
        healthy_after_s: float = HEALTHY_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.commands = commands
        self.env = env
        self.overrides = overrides or {}
        self.policy = RestartPolicy(
            backoff_s, backoff_max_s, crash_window_s, max_crashes, healthy_after_s
        )
        self.clock = clock
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.restarts: dict[str, int] = dict.fromkeys(commands, 0)
        self.registry = CollectorRegistry()
        self.restarts_total = Counter(
            "appointments_child_restarts", RESTARTS_HELP, ["child"], registry=self.registry
        )
        for name in commands:
            self.restarts_total.labels(name)
        self._started: dict[str, float] = {}  # when each child last started (clock)
        self._due: dict[str, float] = {}  # children waiting for their restart: when (clock)
        self._histories: dict[str, CrashHistory] = {}

    def start(self) -> None:
        for name in self.commands:
            self._spawn(name)

    def _spawn(self, name: str) -> None:
        env = {**self.env, **self.overrides.get(name, {})}
        # Output is inherited: every child logs straight to our stdout/stderr.
        proc = subprocess.Popen(list(self.commands[name]), env=env)  # noqa: S603
        self.children[name] = proc
        self._started[name] = self.clock()
        restart = f", restart {self.restarts[name]}" if self.restarts[name] else ""
        say(f"started {name} (pid {proc.pid}{restart})")

    def tick(self) -> str | None:
        """Schedule the restart of every child found to have exited, and restart those whose
        backoff has passed. The name of a child that crashed once too often (the caller then
        gives up), else None."""
        now = self.clock()
        for name, proc in self.children.items():
            code = proc.poll()
            if code is None or name in self._due:
                continue
            if not self.crashed(name, f"(pid {proc.pid}) {describe_exit(code)}", now):
                return name
        for name, due in list(self._due.items()):
            if due > now:
                continue
            del self._due[name]
            self.restarts[name] += 1
            try:
                self._spawn(name)
            except OSError as exc:
                self.restarts[name] -= 1
                if not self.crashed(name, f"could not be started ({exc})", now):
                    return name
                continue
            self.restarts_total.labels(name).inc()
        return None

    def crashed(self, name: str, how: str, now: float) -> bool:
        """Log the crash and schedule the restart; False: give up instead."""
        ran_s = now - self._started.get(name, now)
        history = self._histories.setdefault(name, CrashHistory(self.policy))
        delay = history.crashed(now, ran_s)
        if delay is None:
            say(
                f"{name} {how}: {len(history.crashes)} crashes within "
                f"{self.policy.crash_window_s:g} s, giving up"
            )
            return False
        say(f"{name} {how}: restart {self.restarts.get(name, 0) + 1} in {delay:g} s")
        self._due[name] = now + delay
        return True

    def waiting(self) -> set[str]:
        """The children waiting for their restart."""
        return set(self._due)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Cancel pending restarts; SIGTERM to every live child, wait up to `timeout` in total,
        then SIGKILL the rest."""
        self._due.clear()
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


def serve_metrics(registry: CollectorRegistry, port: int) -> tuple[WSGIServer, Thread] | None:
    """`registry` on http://127.0.0.1:port/metrics from a daemon thread; None when the port
    is 0 (off) or taken (said: the metric is not worth refusing to run)."""
    if port == 0:
        return None
    try:
        return start_http_server(port, addr=HOST, registry=registry)
    except OSError as exc:
        say(f"supervisor metrics not served: port {port} unavailable ({exc.strerror})")
        return None


def stop_metrics(server: tuple[WSGIServer, Thread] | None) -> None:
    if server is not None:
        httpd, thread = server
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=1.0)


class KeptRedis:
    """The embedded Redis, started again on its port (empty: it never saves) when it dies, with
    the children's restart policy and counter (child "redis")."""

    def __init__(self, redis_dir: Path, supervisor: Supervisor) -> None:
        self.redis_dir = redis_dir
        self.supervisor = supervisor
        self.embedded: EmbeddedRedis | None = None
        self.pid = 0
        self.restarts = 0
        self._history = CrashHistory(supervisor.policy)
        self._started = 0.0
        self._due: float | None = None
        supervisor.restarts_total.labels(REDIS_CHILD)

    def start(self, port: int | None = None) -> str:
        """Start it (on `port`, else a free one) and note its URL in the Redis dir; its URL.
        Raises when the new server does not answer."""
        self.embedded = EmbeddedRedis(self.redis_dir, port)
        url = self.embedded.start()
        self._started = self.supervisor.clock()
        self.pid = _redis_pid(url)
        # For `appointments revoke-api-key`, to tell the services at once.
        (self.redis_dir / EMBEDDED_URL_FILE).write_text(url + "\n", encoding="ascii")
        return url

    def tick(self) -> bool:
        """Like Supervisor.tick for the embedded Redis; False: give up."""
        now = self.supervisor.clock()
        if self._due is None:
            return _alive(self.pid) or self._crashed(f"(pid {self.pid}) died", now)
        if now < self._due:
            return True
        self._due = None
        port = None
        if self.embedded is not None:
            port = self.embedded.port
            self.embedded.stop()
        self.restarts += 1
        try:
            url = self.start(port)
        except Exception as exc:
            self.restarts -= 1
            return self._crashed(f"could not be started again ({exc})", now)
        self.supervisor.restarts_total.labels(REDIS_CHILD).inc()
        say(f"embedded Redis on {url} (pid {self.pid}, restart {self.restarts})")
        return True

    def _crashed(self, how: str, now: float) -> bool:
        delay = self._history.crashed(now, now - self._started)
        if delay is None:
            say(
                f"the embedded Redis {how}: {len(self._history.crashes)} crashes within "
                f"{self.supervisor.policy.crash_window_s:g} s, giving up"
            )
            return False
        say(f"the embedded Redis {how}: restart {self.restarts + 1} in {delay:g} s")
        self._due = now + delay
        return True

    def stop(self) -> None:
        (self.redis_dir / EMBEDDED_URL_FILE).unlink(missing_ok=True)
        if self.embedded is not None:
            self.embedded.stop()


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
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run everything in the foreground until a stop signal (0) or until a child crashed too
    often (EXIT_GAVE_UP); 1 when the embedded Redis does not answer at the start.

    `prepare` runs once the ports are known to be free, before anything starts. `environ`
    (default os.environ) holds the RUNNER_* test knobs.
    """
    problems = busy_ports(service_ports(settings))
    if problems:
        for problem in problems:
            say(f"cannot start: {problem}")
        say("set BOOKING_PORT, POLICY_PORT, WEBHOOKS_PORT or NOTIFICATIONS_PORT to other ports")
        return EXIT_PORT_BUSY
    if prepare is not None:
        settings = prepare(settings)

    redis: KeptRedis | None = None
    supervisor: Supervisor | None = None
    metrics: tuple[WSGIServer, Thread] | None = None
    with StopSignal() as stop:
        try:
            commands = child_commands(settings)
            # The child env is built once the Redis URL is known; the supervisor's policy and
            # counter are needed first, for the embedded Redis.
            policy = restart_policy(os.environ if environ is None else environ)
            supervisor = Supervisor(
                commands,
                {},
                child_overrides(settings),
                backoff_s=policy.backoff_s,
                backoff_max_s=policy.backoff_max_s,
                crash_window_s=policy.crash_window_s,
                healthy_after_s=policy.healthy_after_s,
            )
            redis_url = settings.redis_url
            if not redis_url:
                redis = KeptRedis(redis_dir, supervisor)
                try:
                    redis_url = redis.start()
                except Exception as exc:
                    say(f"the embedded Redis does not answer: {exc}")
                    say(f"is a redis-server left over from an earlier run in {redis_dir}?")
                    return EXIT_CHILD_DIED
                say(f"embedded Redis on {redis_url} (pid {redis.pid}, data in {redis_dir})")
            if stop.received:
                return EXIT_STOPPED

            supervisor.env = child_env(settings, redis_url)
            metrics = serve_metrics(supervisor.registry, settings.supervisor_metrics_port)
            supervisor.start()
            for name, url in docs_urls(settings).items():
                say(f"{name:<14} {url}")
            for name, port in worker_metrics_ports(settings).items():
                if port:
                    say(f"{name:<21} http://{HOST}:{port}/metrics")
            if metrics is not None:
                port = settings.supervisor_metrics_port
                say(f"{'supervisor':<21} http://{HOST}:{port}/metrics (child restarts)")
            say("press Ctrl-C to stop")

            readiness = Readiness(service_ports(settings))
            while stop.received is None:
                gave_up = supervisor.tick()
                if gave_up is None and redis is not None and not redis.tick():
                    gave_up = REDIS_CHILD
                if gave_up is not None:
                    say(f"gave up on {gave_up}: stopping everything (exit code {EXIT_GAVE_UP})")
                    return EXIT_GAVE_UP
                readiness.check()
                time.sleep(POLL_INTERVAL_S)
            say(f"{stop.received.name} received: stopping")
            return EXIT_STOPPED
        finally:
            if supervisor is not None:
                supervisor.stop()
            stop_metrics(metrics)
            if redis is not None:
                redis.stop()
            say("stopped")
