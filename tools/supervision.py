"""Process supervision for `appointments run` (ADR 0017): the restart policy, the children
and the embedded Redis kept alive, the restart counter on the supervisor's metrics port."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from threading import Thread
from typing import Any, cast
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, start_http_server

from shared.redis.connection import EmbeddedRedis
from tools.children import HOST

STOP_TIMEOUT_S = 10.0
EMBEDDED_URL_FILE = "url"  # in the Redis dir while the embedded Redis runs
# The restart policy (ADR 0017); RUNNER_* in the environment override them (test knobs).
BACKOFF_S = 1.0  # the delay before the first restart, doubled for each crash in a row
BACKOFF_MAX_S = 30.0
CRASH_WINDOW_S = 60.0  # MAX_CRASHES crashes of one child within this many seconds: give up
MAX_CRASHES = 6  # i.e. five restarts within the window are tolerated, the sixth crash is not
HEALTHY_AFTER_S = 60.0  # a child that ran this long before it crashed starts at BACKOFF_S again
REDIS_CHILD = "redis"  # the embedded Redis' name in log lines and the restart metric


def say(message: str) -> None:
    print(f"[appointments run] {message}", flush=True)


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
