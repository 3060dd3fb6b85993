"""`appointments run`: all services answer, and a stop leaves no process behind. A child's
death and the restarts: tests/cli/test_supervisor.py."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from tests.cli.conftest import Cli, appointments_executable
from tools.key_store import read_key

SERVICES = ("booking", "policy", "webhooks", "notifications")
READY_WITHIN_S = 30
EXIT_WITHIN_S = 15
REDIS_ANNOUNCED = re.compile(r"embedded Redis on redis://127\.0\.0\.1:\d+/0 \(pid (\d+)")


def free_ports(count: int) -> list[int]:
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    log: Path
    ports: dict[str, int]
    mail_port: int = 0  # the development outbox's page

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def redis_pid(self) -> int:
        match = re.search(
            r"embedded Redis on redis://127\.0\.0\.1:\d+/0 \(pid (\d+)", self.output()
        )
        assert match, "no embedded Redis announced:\n" + self.output()[-3000:]
        return int(match.group(1))

    def descendants(self) -> list[psutil.Process]:
        children: list[psutil.Process] = psutil.Process(self.proc.pid).children(recursive=True)
        return children

    def wait_box(self) -> list[str]:
        """The lines of the box printed after "all services ready" (without its frame)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            _, ready, after = self.output().partition("all services ready after")
            rows = after.splitlines()[1:]
            frame = [i for i, row in enumerate(rows) if re.fullmatch(r"\+-+\+", row)]
            if ready and len(frame) >= 2:
                assert frame[0] == 0, "the box follows readiness:\n" + after[:3000]
                return [row[2:-2].rstrip() for row in rows[1 : frame[1]]]
            time.sleep(0.2)
        raise AssertionError("no box after readiness:\n" + self.output()[-3000:])

    def wait_ready(self) -> float:
        """Seconds until all four /health/ready answer 200."""
        started = time.monotonic()
        pending = set(SERVICES)
        with httpx.Client(trust_env=False, timeout=1) as client:
            while pending and time.monotonic() - started < READY_WITHIN_S:
                assert self.proc.poll() is None, "run exited early:\n" + self.output()[-3000:]
                for name in sorted(pending):
                    try:
                        response = client.get(f"http://127.0.0.1:{self.ports[name]}/health/ready")
                    except httpx.HTTPError:
                        continue
                    if response.status_code == 200:
                        pending.discard(name)
                time.sleep(0.2)
        assert not pending, (
            f"not ready within {READY_WITHIN_S} s: {pending}\n{self.output()[-3000:]}"
        )
        return time.monotonic() - started


@contextmanager
def appointments_run(
    tmp_path: Path, cli_env: dict[str, str], ports: dict[str, int] | None = None
) -> Iterator[Running]:
    """`appointments run` in its own process group; killed with its group if a test fails."""
    ports = ports or dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    env = {**cli_env, **{f"{name.upper()}_PORT": str(port) for name, port in ports.items()}}
    # Not the default 9104, 1025 and 8025, which another run on this machine may hold.
    metrics, smtp, page = free_ports(3)
    env.setdefault("SUPERVISOR_METRICS_PORT", str(metrics))
    env.setdefault("DEV_OUTBOX_SMTP_PORT", str(smtp))
    env.setdefault("DEV_OUTBOX_HTTP_PORT", str(page))
    log = tmp_path / "run.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [appointments_executable(), "run"],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Running(proc, log, ports, int(env["DEV_OUTBOX_HTTP_PORT"]))
    try:
        yield running
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def survivors(processes: list[psutil.Process], group: int) -> list[str]:
    """Processes of the list or of the process group that still run (zombies count as gone)."""
    left = []
    candidates = {p.pid: p for p in processes}
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == group:
                candidates.setdefault(proc.pid, proc)
        except (ProcessLookupError, psutil.Error):
            continue
    for proc in candidates.values():
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{proc.pid} {' '.join(proc.cmdline())}")
        except psutil.NoSuchProcess:
            continue
    return left


@pytest.mark.slow
def test_run_serves_all_four_and_stops_cleanly_on_sigint(
    cli: Cli, cli_env: dict[str, str], tmp_path: Path
) -> None:
    assert cli("migrate").returncode == 0
    assert cli("seed-demo").returncode == 0
    demo_key = read_key(next(tmp_path.glob("demo-key.*")))
    started = time.monotonic()
    with appointments_run(tmp_path, cli_env) as running:
        ready_after = running.wait_ready()
        redis = psutil.Process(running.redis_pid())
        watched = [psutil.Process(running.proc.pid), redis, *running.descendants()]
        assert len(watched) >= 2 + 8, [p.cmdline() for p in watched]
        box = running.wait_box()
        assert "API key (admin, company " in box[0] and box[0].endswith(f"): {demo_key}")
        for name, port in running.ports.items():
            base = f"http://127.0.0.1:{port}"
            assert f"  {name:<14} {base}/docs  {base}/redoc" in box
        booking = f"http://127.0.0.1:{running.ports['booking']}"
        assert box[-3:] == [
            f"ops page: {booking}/ops (sign in with the API key)",
            f"mail: http://127.0.0.1:{running.mail_port}/",
            "press Ctrl-C to stop",
        ]
        with httpx.Client(trust_env=False, timeout=5) as client:
            for path in ("/docs", "/redoc"):
                assert client.get(booking + path).status_code == 200

        os.kill(running.proc.pid, signal.SIGINT)
        stop_started = time.monotonic()
        code = running.proc.wait(timeout=EXIT_WITHIN_S)
        stopped_after = time.monotonic() - stop_started

        assert code == 0, running.output()[-3000:]
        assert survivors(watched, group=running.proc.pid) == []
        assert "SIGINT received: stopping" in running.output()
    print(
        f"\nrun: ready after {ready_after:.1f} s, stopped {stopped_after:.1f} s after SIGINT, "
        f"{time.monotonic() - started:.1f} s in all"
    )


def test_run_refuses_a_busy_port(cli: Cli, cli_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cli_env["BOOKING_PORT"] = str(port)
        for name, free in zip(SERVICES[1:], free_ports(3), strict=True):
            cli_env[f"{name.upper()}_PORT"] = str(free)
        result = cli("run", timeout=30)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"port {port} is not free" in result.stdout
    assert "embedded Redis" not in result.stdout, "nothing is started before the ports are checked"
