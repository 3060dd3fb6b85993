"""`appointments run`: the four services, three workers and the development outbox (mail
catcher and SMS/WhatsApp sink, tools/dev_outbox.py) as child processes of one supervisor.

The supervisor starts an embedded Redis when REDIS_URL is unset, starts every child with the
same DATABASE_URL and REDIS_URL, and then watches (ADR 0017). Unless the operator configured
SMTP_HOST, SMTP_PORT, SMS_PROVIDER_URL or WHATSAPP_PROVIDER_URL (or runs in production), the
children's e-mail, SMS and WhatsApp go to the outbox, whose page the ready box names. A child
that exits on its own (any exit code, or a signal) is started again after a backoff: 1 s,
doubling up to 30 s, back to 1 s once the child had run 60 s before it crashed. Each restart is
logged and counted in `appointments_child_restarts_total{child}` on SUPERVISOR_METRICS_PORT
(9104, loopback). An embedded Redis that dies is restarted alike, on its port (empty, as it
never saves). Five restarts of one child within 60 s are tolerated; its sixth crash within 60 s
gives up: everything is stopped, exit 3. SIGINT (Ctrl-C), SIGTERM or SIGHUP stop everything: a
child waiting for its restart is not restarted, every live child gets SIGTERM and up to 10 s of
grace, SIGKILL for stragglers, then the embedded Redis stops; exit 0. Children share the
supervisor's process group, so a terminal's Ctrl-C or `kill -- -PGID` reaches them even if the
supervisor itself is killed.

Test knobs (environment, undocumented for operators): RUNNER_BACKOFF_S, RUNNER_BACKOFF_MAX_S,
RUNNER_CRASH_WINDOW_S and RUNNER_HEALTHY_AFTER_S override the 1 s / 30 s / 60 s / 60 s above.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from threading import Thread
from types import FrameType
from wsgiref.simple_server import WSGIServer

from shared.config import Settings
from tools.children import (
    HOST,
    MAIL_CHILD,
    MailCatcher,
    busy_ports,
    child_commands,
    child_env,
    child_overrides,
    mail_catcher,
    mail_not_started_because,
    service_ports,
    worker_metrics_ports,
)
from tools.cli_info import boxed, gather, info_lines
from tools.key_store import state_dir
from tools.supervision import (
    REDIS_CHILD,
    KeptRedis,
    Supervisor,
    restart_policy,
    say,
    serve_metrics,
    stop_metrics,
)

POLL_INTERVAL_S = 0.2
READY_TIMEOUT_S = 60.0
DEFAULT_REDIS_DIR = Path("var/redis")
EXIT_STOPPED, EXIT_CHILD_DIED, EXIT_PORT_BUSY, EXIT_GAVE_UP = 0, 1, 2, 3


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


def readiness_urls(settings: Settings, catcher: MailCatcher | None) -> dict[str, str]:
    """What answers 200 once a child is ready: each service's /health/ready, the outbox's
    /health."""
    urls = {
        name: f"http://{HOST}:{port}/health/ready" for name, port in service_ports(settings).items()
    }
    if catcher is not None:
        urls[MAIL_CHILD] = f"{catcher.url}/health"
    return urls


class Readiness:
    """Announces once that every service (and the outbox) answers its health URL with 200 (or
    which do not after READY_TIMEOUT_S); `check` is True on the tick it is done."""

    def __init__(self, urls: Mapping[str, str]) -> None:
        self.urls = dict(urls)
        self.pending = set(self.urls)
        self.not_ready: set[str] = set()
        self.started = time.monotonic()
        # No proxies: these are loopback calls, whatever HTTP_PROXY says.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def check(self) -> bool:
        if not self.pending:
            return False
        for name in sorted(self.pending):
            try:
                with self._opener.open(self.urls[name], timeout=0.5) as response:
                    if response.status == 200:
                        self.pending.discard(name)
            except OSError:
                pass
        if not self.pending:
            say(f"all services ready after {time.monotonic() - self.started:.1f} s")
            return True
        if time.monotonic() - self.started > READY_TIMEOUT_S:
            say(f"still not ready after {READY_TIMEOUT_S:g} s: {', '.join(sorted(self.pending))}")
            self.not_ready, self.pending = self.pending, set()
            return True
        return False

    def states(self) -> dict[str, str]:
        return {name: "not ready" if name in self.not_ready else "ready" for name in self.urls}


def print_box(settings: Settings, key_dir: Path, readiness: Readiness) -> None:
    """The key, the docs, the ops and mail pages in a box: the last thing a newcomer reads."""
    info = gather(settings, key_dir, states=readiness.states())
    print(boxed([*info_lines(info), "press Ctrl-C to stop"]), flush=True)


def run(
    settings: Settings,
    redis_dir: Path = DEFAULT_REDIS_DIR,
    prepare: Callable[[Settings], Settings] | None = None,
    environ: Mapping[str, str] | None = None,
    key_dir: Path | None = None,
) -> int:
    """Run everything in the foreground until a stop signal (0) or until a child crashed too
    often (EXIT_GAVE_UP); 1 when the embedded Redis does not answer at the start.

    `prepare` runs once the ports are known to be free, before anything starts. `environ`
    (default os.environ) holds the RUNNER_* test knobs. `key_dir` (default: the state dir)
    holds the demo key shown in the box printed once every service is ready.
    """
    catcher = mail_catcher(settings)
    ports = service_ports(settings) | (catcher.ports() if catcher else {})
    problems = busy_ports(ports)
    if problems:
        for problem in problems:
            say(f"cannot start: {problem}")
        say(
            "set BOOKING_PORT, POLICY_PORT, WEBHOOKS_PORT, NOTIFICATIONS_PORT, "
            "DEV_OUTBOX_SMTP_PORT or DEV_OUTBOX_HTTP_PORT to other ports"
        )
        return EXIT_PORT_BUSY
    if catcher is None:
        say(f"mail catcher not started: {mail_not_started_because(settings)}")
    if prepare is not None:
        settings = prepare(settings)

    redis: KeptRedis | None = None
    supervisor: Supervisor | None = None
    metrics: tuple[WSGIServer, Thread] | None = None
    with StopSignal() as stop:
        try:
            commands = child_commands(settings, catcher)
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

            supervisor.env = child_env(settings, redis_url, catcher)
            metrics = serve_metrics(supervisor.registry, settings.supervisor_metrics_port)
            supervisor.start()
            for name, port in worker_metrics_ports(settings).items():
                if port:
                    say(f"{name:<21} http://{HOST}:{port}/metrics")
            if metrics is not None:
                port = settings.supervisor_metrics_port
                say(f"{'supervisor':<21} http://{HOST}:{port}/metrics (child restarts)")
            readiness = Readiness(readiness_urls(settings, catcher))
            while stop.received is None:
                gave_up = supervisor.tick()
                if gave_up is None and redis is not None and not redis.tick():
                    gave_up = REDIS_CHILD
                if gave_up is not None:
                    say(f"gave up on {gave_up}: stopping everything (exit code {EXIT_GAVE_UP})")
                    return EXIT_GAVE_UP
                if readiness.check():
                    print_box(settings, key_dir or state_dir(settings), readiness)
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
