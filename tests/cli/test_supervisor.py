"""`appointments run` as a supervisor (ADR 0017): a killed child is restarted with backoff and
counted, the others keep running, and one child crashing six times within a minute ends the run
with EXIT_GAVE_UP and no process left behind. The restart policy itself: pure unit tests.

Each kill -9 happens under steady load (LOAD_CLIENTS clients booking distinct slots every
PACE_S, from just before the kill until the child is back); the figures go to the fault table
(tests/faults/report.py, `make faults`): sent, accepted, refused, 500s, lost, duplicated, time
to recover."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import pytest
import redis
from arq import create_pool
from arq.connections import RedisSettings
from arq.jobs import JobStatus

from shared.config import Settings
from shared.jobs.queue import BOOKING_QUEUE
from tests.cli.conftest import Cli, appointments_executable
from tests.cli.test_run import SERVICES, Running, appointments_run, free_ports, survivors
from tests.faults.report import record_fault
from tools.children import RUN_DRAIN_TIMEOUT_S, child_env
from tools.runner import EXIT_GAVE_UP
from tools.supervision import (
    STOP_TIMEOUT_S,
    CrashHistory,
    RestartPolicy,
    Supervisor,
    describe_exit,
    restart_policy,
)

T = TypeVar("T")

BACK_WITHIN_S = 10.0  # the issue: back serving within 10 s of a kill -9
STOP_WITHIN_S = 10.0
STARTED = re.compile(r"\[appointments run\] started (\S+) \(pid (\d+)")
REDIS_ANNOUNCED = re.compile(r"embedded Redis on (redis://\S+) \(pid (\d+)")
RESTARTS = re.compile(r'^appointments_child_restarts_total\{child="([^"]+)"\} (\S+)$', re.M)
CHILDREN = (*SERVICES, "booking-worker", "webhooks-worker", "notifications-worker", "mail")
LOAD_CLIENTS = 3
PACE_S = 0.05  # each client sends a booking every 50 ms, answered or not
LEAD_S = 0.3  # the load runs this long before the kill
TAIL_S = 0.3  # ... and this long after the child is back
# A job a killed worker had claimed runs again once its ARQ in-progress mark expires, after
# WORKER_JOB_TIMEOUT_S + 10 s (40 s by default): 15 s here, so the test sees it happen.
JOB_TIMEOUT_S = 5
FOLLOW_UPS_WITHIN_S = JOB_TIMEOUT_S + 10 + 10.0
SYNC_JOB = "sync_appointment"  # the booking worker's follow-up of every booking


# --- the restart policy, without processes ------------------------------------------------------


def delays(history: CrashHistory, crashes: list[tuple[float, float]]) -> list[float | None]:
    return [history.crashed(at, ran_s) for at, ran_s in crashes]


def test_backoff_starts_at_1_s_and_doubles_up_to_30_s() -> None:
    history = CrashHistory(RestartPolicy())
    # A crash every 20 s after 10 s of running: never healthy, never 6 within 60 s.
    assert delays(history, [(20.0 * i, 10.0) for i in range(8)]) == [
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        30.0,
        30.0,
        30.0,
    ]


def test_backoff_is_reset_by_60_s_of_health() -> None:
    history = CrashHistory(RestartPolicy())
    assert delays(history, [(0.0, 0.1), (1.1, 0.1), (3.2, 0.1)]) == [1.0, 2.0, 4.0]
    assert history.crashed(67.0, 59.9) == 8.0, "59.9 s of running is not yet healthy"
    assert history.crashed(200.0, 60.0) == 1.0
    assert history.crashed(201.1, 0.1) == 2.0


def test_the_sixth_crash_within_60_s_gives_up_five_restarts_do_not() -> None:
    quick = CrashHistory(RestartPolicy())
    # Crashing at once after each start: 1 + 2 + 4 + 8 + 16 s of backoff.
    assert delays(quick, [(0.0, 0.0), (1.0, 0.0), (3.0, 0.0), (7.0, 0.0), (15.0, 0.0)]) == [
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
    ]
    assert quick.crashed(31.0, 0.0) is None

    spread = CrashHistory(RestartPolicy(backoff_s=0.01, backoff_max_s=0.01))
    # Six crashes, but the first one is 60 s old when the sixth comes: not within 60 s.
    assert None not in delays(spread, [(0.0, 0), (20.0, 0), (30.0, 0), (40.0, 0), (50.0, 0)])
    assert spread.crashed(60.0, 0) is not None
    assert spread.crashed(60.5, 0) is None, "20, 30, 40, 50, 60, 60.5: six within 60 s"


def test_restart_policy_reads_the_test_knobs_and_ignores_junk() -> None:
    assert restart_policy({}) == RestartPolicy(1.0, 30.0, 60.0, 6, 60.0)
    knobs = {
        "RUNNER_BACKOFF_S": "0.05",
        "RUNNER_BACKOFF_MAX_S": "0.2",
        "RUNNER_CRASH_WINDOW_S": "5",
        "RUNNER_HEALTHY_AFTER_S": "2",
    }
    assert restart_policy(knobs) == RestartPolicy(0.05, 0.2, 5.0, 6, 2.0)
    junk = {
        "RUNNER_BACKOFF_S": "soon",
        "RUNNER_BACKOFF_MAX_S": "-1",
        "RUNNER_CRASH_WINDOW_S": "inf",
    }
    assert restart_policy(junk) == RestartPolicy()


def test_exit_codes_and_signals_in_words() -> None:
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(0) == "exited with code 0"
    assert describe_exit(-9) == "was killed by SIGKILL"


def test_workers_under_run_drain_within_the_supervisors_stop_timeout() -> None:
    url = "redis://127.0.0.1:6379/0"
    assert child_env(Settings(worker_drain_timeout_s=25), url)["WORKER_DRAIN_TIMEOUT_S"] == "8"
    assert child_env(Settings(worker_drain_timeout_s=0.5), url)["WORKER_DRAIN_TIMEOUT_S"] == "0.5"
    assert RUN_DRAIN_TIMEOUT_S < STOP_TIMEOUT_S


# --- the Supervisor with tiny children ---------------------------------------------------------

CRASH = [sys.executable, "-c", "import sys; sys.exit(3)"]
SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def tick_until(supervisor: Supervisor, done: Callable[[str | None], bool], within_s: float) -> str:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        gave_up = supervisor.tick()
        if done(gave_up):
            return gave_up or ""
        time.sleep(0.01)
    raise AssertionError(f"not done within {within_s} s; restarts: {supervisor.restarts}")


def counted(supervisor: Supervisor, child: str) -> float | None:
    return supervisor.registry.get_sample_value(
        "appointments_child_restarts_total", {"child": child}
    )


def test_supervisor_restarts_a_crashing_child_five_times_then_gives_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    supervisor = Supervisor(
        {"crasher": CRASH, "steady": SLEEP}, dict(os.environ), backoff_s=0.01, backoff_max_s=0.04
    )
    supervisor.start()
    steady = supervisor.children["steady"]
    try:
        gave_up = tick_until(supervisor, lambda name: name is not None, within_s=20)
        assert gave_up == "crasher"
        assert supervisor.restarts == {"crasher": 5, "steady": 0}
        assert counted(supervisor, "crasher") == 5.0
        assert counted(supervisor, "steady") == 0.0
        assert supervisor.children["steady"] is steady and steady.poll() is None
    finally:
        supervisor.stop()
    assert steady.poll() is not None
    out = capsys.readouterr().out
    assert "crasher (pid " in out and ") exited with code 3: restart 1 in 0.01 s" in out
    assert "exited with code 3: restart 3 in 0.04 s" in out, "doubled, capped at 0.04"
    assert "exited with code 3: 6 crashes within 60 s, giving up" in out
    assert len(re.findall(r"started crasher \(pid \d+, restart \d\)", out)) == 5


def test_a_child_waiting_for_its_restart_is_not_restarted_by_a_stop() -> None:
    now = [0.0]
    supervisor = Supervisor(
        {"crasher": CRASH, "steady": SLEEP},
        dict(os.environ),
        backoff_s=30,
        backoff_max_s=30,
        clock=lambda: now[0],
    )
    supervisor.start()
    first = supervisor.children["crasher"]
    try:
        tick_until(supervisor, lambda _: supervisor.waiting() == {"crasher"}, within_s=10)
    finally:
        started = time.monotonic()
        supervisor.stop()
    assert time.monotonic() - started < 2
    now[0] += 31.0  # its backoff has passed
    assert supervisor.tick() is None
    assert supervisor.children["crasher"] is first, "no new process after the stop"
    assert supervisor.restarts["crasher"] == 0
    assert all(proc.poll() is not None for proc in supervisor.children.values())


def test_a_child_is_started_again_once_its_backoff_has_passed() -> None:
    now = [0.0]
    supervisor = Supervisor(
        {"crasher": CRASH}, dict(os.environ), backoff_s=30, clock=lambda: now[0]
    )
    supervisor.start()
    first = supervisor.children["crasher"]
    try:
        tick_until(supervisor, lambda _: supervisor.waiting() == {"crasher"}, within_s=10)
        now[0] += 29.9
        assert supervisor.tick() is None
        assert supervisor.children["crasher"] is first, "not before its 30 s"
        now[0] += 0.1
        assert supervisor.tick() is None
        assert supervisor.children["crasher"] is not first
        assert supervisor.restarts["crasher"] == 1
    finally:
        supervisor.stop()


# --- `appointments run` as a subprocess --------------------------------------------------------


def wait_for(probe: Callable[[], T | None], within_s: float, what: str, log: Running) -> T:
    deadline = time.monotonic() + within_s
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within_s} s\n{log.output()[-4000:]}")
        time.sleep(0.05)


def child_pids(running: Running) -> dict[str, int]:
    """Every child's latest pid, as announced in the log."""
    return {name: int(pid) for name, pid in STARTED.findall(running.output())}


def restarts_metric(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", trust_env=False, timeout=2).text
    return {child: float(value) for child, value in RESTARTS.findall(text)}


def new_pid(running: Running, name: str, old: int) -> Callable[[], int | None]:
    def probe() -> int | None:
        pid = child_pids(running).get(name)
        return pid if pid not in (None, old) else None

    return probe


def live(port: int) -> Callable[[], bool | None]:
    def probe() -> bool | None:
        try:
            response = httpx.get(
                f"http://127.0.0.1:{port}/health/live", trust_env=False, timeout=0.5
            )
        except httpx.HTTPError:
            return None
        return True if response.status_code == 200 else None

    return probe


async def ping(redis_url: str, queue: str, within_s: float) -> str:
    """Enqueue the `ping` job every worker has and wait until a worker took it off the queue
    and finished it (the workers keep no results: then ARQ knows the job no more)."""
    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        job = await pool.enqueue_job("ping", _queue_name=queue)
        assert job is not None
        deadline = time.monotonic() + within_s
        while (status := await job.status()) != JobStatus.not_found:
            if time.monotonic() > deadline:
                return f"still {status.value} after {within_s:.1f} s"
            await asyncio.sleep(0.05)
        return "pong"
    finally:
        await pool.aclose()


def synced_since(supervised: Supervised, since: datetime) -> bool | None:
    """A sync_appointment row created after `since` (naive UTC) is done."""
    rows = supervised.rows(
        "SELECT created_at FROM outbox_events WHERE job_name = ? AND status = 'done'", SYNC_JOB
    )
    return True if any(utc_naive(str(created)) > since for (created,) in rows) else None


def claimed(redis_url: str, queue: str) -> int:
    """Jobs of `queue` a worker has taken (ARQ's in-progress mark) and not finished."""
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    try:
        prefix = "arq:in-progress:"
        taken = [key.decode()[len(prefix) :] for key in client.scan_iter(f"{prefix}*")]
        return len([job for job in taken if client.zscore(queue, job) is not None])
    finally:
        client.close()


def redis_url_and_pid(running: Running) -> tuple[str, int]:
    url, pid = REDIS_ANNOUNCED.findall(running.output())[-1]
    return url, int(pid)


@dataclass
class Supervised:
    running: Running
    demo: dict[str, Any]
    metrics_port: int
    database: Path
    next_day: int = 10  # the load books from here on (the tests' own bookings: days 7 and 8)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.running.ports['booking']}",
            headers={"Authorization": f"Bearer {self.demo['api_key']}"},
            trust_env=False,
            timeout=10,
        )

    def book(self, day_offset: int) -> dict[str, Any]:
        """A booking on the first free slot of a weekday `day_offset` or more days ahead."""
        day = date.today() + timedelta(days=day_offset)
        while day.weekday() >= 5:
            day += timedelta(days=1)
        service = self.demo["services"][0]["id"]
        with self.client() as client:
            slots = client.get(
                "/v1/availability", params={"service_id": service, "date": day.isoformat()}
            )
            assert slots.status_code == 200, slots.text
            slot = slots.json()["slots"][0]
            created = client.post(
                "/v1/appointments",
                json={
                    "service_id": service,
                    "staff_id": slot["staff_id"],
                    "start": slot["start"],
                    "customer": {"name": "Erika Muster", "phone": "+4915112345678"},
                },
            )
        assert created.status_code == 201, created.text
        booking: dict[str, Any] = created.json()
        return booking

    def free_slots(self, count: int) -> list[tuple[str, str]]:
        """`count` distinct (staff_id, start) of the first service that do not overlap, on
        weekdays no other test of this module books."""
        service = self.demo["services"][0]["id"]
        found: list[tuple[str, str]] = []
        with self.client() as client:
            while len(found) < count:
                day = date.today() + timedelta(days=self.next_day)
                self.next_day += 1
                if day.weekday() >= 5:
                    continue
                slots = client.get(
                    "/v1/availability", params={"service_id": service, "date": day.isoformat()}
                )
                assert slots.status_code == 200, slots.text
                ends: dict[str, datetime] = {}
                for slot in slots.json()["slots"]:
                    start = datetime.fromisoformat(slot["start"])
                    if start >= ends.get(slot["staff_id"], start):
                        found.append((slot["staff_id"], slot["start"]))
                        ends[slot["staff_id"]] = datetime.fromisoformat(slot["end"])
        return found[:count]

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """A read of the running app's SQLite file (WAL: no lock in anyone's way)."""
        connection = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=5)
        try:
            return connection.execute(sql, params).fetchall()
        finally:
            connection.close()


def utc_naive(text: str) -> datetime:
    """An instant as the SQLite file stores it (naive UTC), from ISO text or a stored value."""
    instant = datetime.fromisoformat(text)
    return instant.astimezone(UTC).replace(tzinfo=None) if instant.tzinfo else instant


@dataclass
class Tally:
    """What the load's clients saw."""

    sent: int = 0
    accepted: dict[str, float] = field(default_factory=dict)  # appointment id -> sent at
    refused_503: int = 0  # 503 problem+json
    connection_refused: int = 0  # nothing listening on the port
    dropped: int = 0  # the connection broke mid-request: no answer at all
    errors_500: int = 0
    unexpected: list[str] = field(default_factory=list)
    first_success: float | None = None  # answered 201, sent after `fault_at`

    def __str__(self) -> str:
        return (
            f"sent {self.sent}, accepted {len(self.accepted)}, 503 {self.refused_503}, "
            f"connection refused {self.connection_refused}, cut off {self.dropped}, "
            f"500s {self.errors_500}, unexpected {len(self.unexpected)}"
        )


class SteadyBookings:
    """LOAD_CLIENTS clients booking distinct free slots every PACE_S, on a loop of their own in
    a thread, so the test can kill and wait meanwhile. Every request is counted."""

    def __init__(self, supervised: Supervised, slots: list[tuple[str, str]]) -> None:
        self.supervised = supervised
        self.slots = iter(slots)
        self.handed: list[tuple[str, str]] = []
        self.tally = Tally()
        self.fault_at = float("inf")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> SteadyBookings:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the load did not stop"

    def fault(self) -> None:
        """The fault happens now: a success after this is the recovery."""
        self.fault_at = time.monotonic()

    def recovered(self) -> float | None:
        """Seconds from the fault to the first booking accepted after it, None before."""
        first = self.tally.first_success
        return None if first is None else first - self.fault_at

    async def _run(self) -> None:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.supervised.running.ports['booking']}",
            headers={"Authorization": f"Bearer {self.supervised.demo['api_key']}"},
            trust_env=False,
            timeout=10,
        ) as client:
            await asyncio.gather(*(self._client(client, n) for n in range(LOAD_CLIENTS)))

    async def _client(self, client: httpx.AsyncClient, number: int) -> None:
        service = self.supervised.demo["services"][0]["id"]
        sequence = 0
        while not self._stop.is_set():
            slot = next(self.slots, None)
            if slot is None:
                self.tally.unexpected.append("out of free slots")
                return
            self.handed.append(slot)
            sequence += 1
            sent = time.monotonic()
            await self._book(client, service, slot, f"+49151{number}{sequence:07d}", sent)
            await asyncio.sleep(max(0.0, PACE_S - (time.monotonic() - sent)))

    async def _book(
        self,
        client: httpx.AsyncClient,
        service: str,
        slot: tuple[str, str],
        phone: str,
        sent: float,
    ) -> None:
        tally = self.tally
        tally.sent += 1
        body = {
            "service_id": service,
            "staff_id": slot[0],
            "start": slot[1],
            "customer": {"name": "Lasse Last", "phone": phone},
        }
        try:
            response = await client.post("/v1/appointments", json=body)
        except httpx.ConnectError:
            tally.connection_refused += 1
            return
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
            tally.dropped += 1
            return
        except httpx.HTTPError as exc:
            tally.unexpected.append(repr(exc))
            return
        if response.status_code == 201:
            tally.accepted[response.json()["id"]] = sent
            if sent >= self.fault_at and tally.first_success is None:
                tally.first_success = time.monotonic()
        elif response.status_code == 503 and response.headers.get("content-type") == (
            "application/problem+json"
        ):
            tally.refused_503 += 1
        elif response.status_code >= 500:
            tally.errors_500 += 1
            tally.unexpected.append(f"{response.status_code} {response.text[:300]}")
        else:
            tally.unexpected.append(f"{response.status_code} {response.text[:300]}")


@dataclass
class Stored:
    """What the database holds of the load's bookings afterwards."""

    lost: list[str]  # accepted, not there
    duplicated: int  # rows beyond the first on one handed-out slot
    unacknowledged: int  # rows on handed-out slots whose request got no 201 (no answer)


def stored(supervised: Supervised, load: SteadyBookings) -> Stored:
    handed = Counter((staff, utc_naive(start)) for staff, start in load.handed)
    rows = supervised.rows(
        "SELECT id, staff_id, starts_at FROM appointments WHERE company_id = ?",
        supervised.demo["company_id"],
    )
    ids = {row[0] for row in rows}
    on_slots = [row for row in rows if (row[1], utc_naive(row[2])) in handed]
    per_slot = Counter((row[1], utc_naive(row[2])) for row in on_slots)
    return Stored(
        lost=[a for a in load.tally.accepted if a not in ids],
        duplicated=sum(n - 1 for n in per_slot.values()),
        unacknowledged=len([row for row in on_slots if row[0] not in load.tally.accepted]),
    )


def follow_ups(supervised: Supervised, appointment_ids: list[str]) -> dict[str, list[str]]:
    """Each appointment's sync_appointment outbox rows' statuses."""
    found: dict[str, list[str]] = {a: [] for a in appointment_ids}
    for aggregate, status in supervised.rows(
        "SELECT aggregate_id, status FROM outbox_events WHERE job_name = ?", SYNC_JOB
    ):
        if aggregate in found:
            found[aggregate].append(status)
    return found


def follow_ups_done(
    supervised: Supervised, appointment_ids: list[str]
) -> tuple[dict[str, list[str]], float | None]:
    """Waits up to FOLLOW_UPS_WITHIN_S for every booking's sync row to be done: the rows, and
    when they were all done (monotonic; None if not in time)."""
    deadline = time.monotonic() + FOLLOW_UPS_WITHIN_S
    while True:
        rows = follow_ups(supervised, appointment_ids)
        if all(statuses == ["done"] for statuses in rows.values()):
            return rows, time.monotonic()
        if time.monotonic() > deadline:
            return rows, None
        time.sleep(0.2)


def all_done_after(done_at: float | None, fault_at: float) -> str:
    return "not within the wait" if done_at is None else f"{done_at - fault_at:.1f} s"


def record_load(
    fault: str,
    load: SteadyBookings,
    found: Stored,
    recover_s: float | None,
    note: str,
    lost_follow_ups: int = 0,
    duplicated_follow_ups: int = 0,
) -> None:
    tally = load.tally
    refusals = []
    if tally.connection_refused:
        refusals.append(f"{tally.connection_refused} connection refused while down")
    if tally.refused_503:
        refusals.append(f"{tally.refused_503} 503 problem+json")
    dropped = f"{tally.dropped} cut off mid-request (no answer; {found.unacknowledged} of all "
    dropped += "unanswered bookings were stored anyway)"
    record_fault(
        fault,
        sent=tally.sent,
        accepted=len(tally.accepted),
        refused=tally.connection_refused + tally.refused_503,
        errors_500=tally.errors_500,
        lost=len(found.lost) + lost_follow_ups,
        duplicated=found.duplicated + duplicated_follow_ups,
        recover_s=recover_s,
        note=f"`appointments run`, {LOAD_CLIENTS} clients booking every {PACE_S * 1000:.0f} ms; "
        f"refusals: {', '.join(refusals) or 'none'}; {dropped}; {note}",
    )


@pytest.fixture(scope="module")
def supervised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervised]:
    """One `appointments run` (SQLite, embedded Redis, demo tenant) for the kill tests."""
    tmp_path = tmp_path_factory.mktemp("supervised")
    metrics_port = free_ports(1)[0]
    env = dict(os.environ)
    env.pop("REDIS_URL", None)
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'appointments.db'}"
    env["LOG_JSON"] = "true"
    env["WORKER_METRICS_PORT"] = "0"
    env["SUPERVISOR_METRICS_PORT"] = str(metrics_port)
    env["WORKER_JOB_TIMEOUT_S"] = str(JOB_TIMEOUT_S)

    def cli(*args: str) -> str:
        done = subprocess.run(
            [appointments_executable(), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    cli("migrate")
    demo = json.loads(cli("seed-demo", "--json"))
    with appointments_run(tmp_path, env) as running:
        running.wait_ready()
        yield Supervised(running, demo, metrics_port, tmp_path / "appointments.db")


@pytest.mark.slow
def test_a_killed_service_answers_again_within_10_s_and_keeps_what_it_acknowledged(
    supervised: Supervised,
) -> None:
    running = supervised.running
    booked = supervised.book(day_offset=7)
    before = child_pids(running)
    counted_before = restarts_metric(supervised.metrics_port)

    with SteadyBookings(supervised, supervised.free_slots(400)) as load:
        time.sleep(LEAD_S)
        os.kill(before["booking"], signal.SIGKILL)
        load.fault()
        killed = time.monotonic()
        restarted = wait_for(
            new_pid(running, "booking", before["booking"]), BACK_WITHIN_S, "", running
        )
        wait_for(
            live(running.ports["booking"]),
            BACK_WITHIN_S - (time.monotonic() - killed),
            "live",
            running,
        )
        back_after = time.monotonic() - killed
        wait_for(load.recovered, BACK_WITHIN_S, "a booking accepted after the kill", running)
        time.sleep(TAIL_S)
    found = stored(supervised, load)
    recover_s = load.recovered()
    record_load(
        "kill -9 of a service (booking) under `appointments run`",
        load,
        found,
        recover_s,
        "time: kill -> first booking accepted",
    )

    tally = load.tally
    assert tally.unexpected == [], tally.unexpected[:5]
    assert tally.errors_500 == 0
    assert found.lost == [], "acknowledged bookings lost"
    assert found.duplicated == 0
    assert tally.connection_refused > 0, "the load ran while the service was down"
    assert len(tally.accepted) > 0 and recover_s is not None and recover_s < BACK_WITHIN_S

    after = child_pids(running)
    assert after == {**before, "booking": restarted}, "only the killed child was restarted"
    assert all(psutil.Process(pid).is_running() for pid in after.values())
    with supervised.client() as client:
        kept = client.get(f"/v1/appointments/{booked['id']}")
    assert kept.status_code == 200, kept.text
    assert (kept.json()["id"], kept.json()["status"]) == (booked["id"], "confirmed")
    assert supervised.book(day_offset=8)["status"] == "confirmed", "it books again"
    counted_after = restarts_metric(supervised.metrics_port)
    assert counted_after == {**counted_before, "booking": counted_before["booking"] + 1}
    assert f"booking (pid {before['booking']}) was killed by SIGKILL: restart" in running.output()
    print(
        f"\nbooking: /health/live again {back_after:.1f} s after kill -9, a booking accepted "
        f"{recover_s:.1f} s after it; {tally}"
    )


@pytest.mark.slow
def test_a_killed_worker_is_back_within_10_s_and_consumes_its_queue(
    supervised: Supervised,
) -> None:
    running = supervised.running
    redis_url, _ = redis_url_and_pid(running)
    assert asyncio.run(ping(redis_url, BOOKING_QUEUE, within_s=30)) == "pong"
    before = child_pids(running)
    counted_before = restarts_metric(supervised.metrics_port)

    with SteadyBookings(supervised, supervised.free_slots(400)) as load:
        time.sleep(LEAD_S)
        os.kill(before["booking-worker"], signal.SIGKILL)
        load.fault()
        killed = time.monotonic()
        killed_at = datetime.now(UTC).replace(tzinfo=None)
        orphaned = claimed(redis_url, BOOKING_QUEUE)  # no worker runs them now
        restarted = wait_for(
            new_pid(running, "booking-worker", before["booking-worker"]), BACK_WITHIN_S, "", running
        )
        # Back: a follow-up of a booking made after the kill is done (only the new worker can).
        wait_for(
            lambda: synced_since(supervised, killed_at),
            BACK_WITHIN_S,
            "a follow-up done after the kill",
            running,
        )
        back_after = time.monotonic() - killed
        time.sleep(TAIL_S)
    pong = asyncio.run(ping(redis_url, BOOKING_QUEUE, BACK_WITHIN_S))
    found = stored(supervised, load)
    rows, done_at = follow_ups_done(supervised, list(load.tally.accepted))
    not_done = [a for a, statuses in rows.items() if "done" not in statuses]
    record_load(
        "kill -9 of a worker (booking-worker) under `appointments run`",
        load,
        found,
        back_after,
        f"lost/duplicated include each booking's follow-up ({SYNC_JOB}, done by this worker); "
        "time: kill -> first follow-up done by the new worker; all follow-ups done "
        f"{all_done_after(done_at, killed)} after the kill ({orphaned} job(s) the killed "
        "worker had taken run again when their ARQ in-progress mark expires, "
        f"WORKER_JOB_TIMEOUT_S + 10 s: {JOB_TIMEOUT_S + 10} s here, 40 s by default)",
        lost_follow_ups=len(not_done),
        duplicated_follow_ups=sum(len(statuses) - 1 for statuses in rows.values() if statuses),
    )

    tally = load.tally
    assert tally.unexpected == [], tally.unexpected[:5]
    assert tally.errors_500 == 0 and tally.dropped == tally.connection_refused == 0
    assert found.lost == [] and found.duplicated == 0
    assert not_done == [], {a: rows[a] for a in not_done[:5]}
    assert all(len(statuses) == 1 for statuses in rows.values())
    assert pong == "pong"
    assert child_pids(running) == {**before, "booking-worker": restarted}
    counted_after = restarts_metric(supervised.metrics_port)
    assert counted_after == {
        **counted_before,
        "booking-worker": counted_before["booking-worker"] + 1,
    }
    print(f"\nbooking-worker: a follow-up done {back_after:.1f} s after kill -9; {tally}")


@pytest.mark.slow
def test_a_killed_embedded_redis_is_started_again_on_its_port(supervised: Supervised) -> None:
    running = supervised.running
    url, pid = redis_url_and_pid(running)
    services = {name: child_pids(running)[name] for name in SERVICES}
    counted_before = restarts_metric(supervised.metrics_port)

    with SteadyBookings(supervised, supervised.free_slots(400)) as load:
        time.sleep(LEAD_S)
        os.kill(pid, signal.SIGKILL)
        load.fault()
        killed = time.monotonic()
        wait_for(lambda: redis_url_and_pid(running)[1] != pid or None, BACK_WITHIN_S, "", running)
        assert redis_url_and_pid(running)[0] == url, "the same port: the children keep their URL"
        pong = asyncio.run(ping(url, BOOKING_QUEUE, within_s=30))
        back_after = time.monotonic() - killed
        time.sleep(TAIL_S)
    found = stored(supervised, load)
    rows, done_at = follow_ups_done(supervised, list(load.tally.accepted))
    not_done = [a for a, statuses in rows.items() if "done" not in statuses]
    record_load(
        "kill -9 of the embedded Redis under `appointments run` (restarted empty)",
        load,
        found,
        back_after,
        f"lost/duplicated include each booking's follow-up ({SYNC_JOB}, through Redis); "
        "time: kill -> a job through the new Redis done; all follow-ups done "
        f"{all_done_after(done_at, killed)} after the kill",
        lost_follow_ups=len(not_done),
        duplicated_follow_ups=sum(len(statuses) - 1 for statuses in rows.values() if statuses),
    )

    tally = load.tally
    assert tally.unexpected == [], tally.unexpected[:5]
    assert tally.errors_500 == 0 and tally.dropped == tally.connection_refused == 0
    assert found.lost == [] and found.duplicated == 0
    assert not_done == [], {a: rows[a] for a in not_done[:5]}
    assert all(len(statuses) == 1 for statuses in rows.values())
    assert pong == "pong"
    assert {name: child_pids(running)[name] for name in SERVICES} == services
    assert restarts_metric(supervised.metrics_port)["redis"] == counted_before["redis"] + 1
    print(f"\nembedded Redis: a ping job done {back_after:.1f} s after kill -9; {tally}")


@pytest.mark.slow
def test_sigint_after_restarts_stops_everything_within_10_s(supervised: Supervised) -> None:
    running = supervised.running
    _, redis_pid = redis_url_and_pid(running)
    watched = [psutil.Process(running.proc.pid), psutil.Process(redis_pid)]
    watched += running.descendants()

    os.kill(running.proc.pid, signal.SIGINT)
    code = running.proc.wait(timeout=STOP_WITHIN_S)

    assert code == 0, running.output()[-3000:]
    assert survivors(watched, group=running.proc.pid) == []
    assert "SIGINT received: stopping" in running.output()


@pytest.mark.slow
def test_six_crashes_of_one_child_within_a_minute_give_up_and_leave_nothing(
    cli: Cli, cli_env: dict[str, str], tmp_path: Path
) -> None:
    assert cli("migrate").returncode == 0
    metrics_port = free_ports(1)[0]
    cli_env.update(
        RUNNER_BACKOFF_S="0.05",
        RUNNER_BACKOFF_MAX_S="0.2",
        WORKER_METRICS_PORT="0",
        SUPERVISOR_METRICS_PORT=str(metrics_port),
    )
    with appointments_run(tmp_path, cli_env) as running:
        watched: list[psutil.Process] = []
        pid = 0
        for crash in range(1, 7):
            pid = wait_for(new_pid(running, "booking-worker", pid), 20, f"start {crash}", running)
            if crash == 6:
                assert restarts_metric(metrics_port)["booking-worker"] == 5.0
                watched = [psutil.Process(running.proc.pid), *running.descendants()]
                watched.append(psutil.Process(redis_url_and_pid(running)[1]))
            os.kill(pid, signal.SIGKILL)
        last_kill = time.monotonic()
        code = running.proc.wait(timeout=STOP_WITHIN_S + 5)
        exited_s = time.monotonic() - last_kill

        output = running.output()
        left = survivors(watched, group=running.proc.pid)
        record_fault(
            "6 crashes of one child within a minute (booking-worker, kill -9)",
            sent=0,
            accepted=0,
            refused=0,
            errors_500=0,
            lost=0,
            duplicated=0,
            recover_s=None,
            note=f"the limit by design: 5 restarts, then `appointments run` stops everything "
            f"and exits {code}{'' if code == EXIT_GAVE_UP else f' (expected {EXIT_GAVE_UP})'} "
            f"{exited_s:.1f} s after the 6th kill, "
            f"{len(left)} process(es) left; no load",
        )
        assert code == EXIT_GAVE_UP, output[-3000:]
        assert "was killed by SIGKILL: restart 5 in 0.2 s" in output
        assert "was killed by SIGKILL: 6 crashes within 60 s, giving up" in output
        assert (
            f"gave up on booking-worker: stopping everything (exit code {EXIT_GAVE_UP})" in output
        )
        starts = [name for name, _ in STARTED.findall(output)]
        assert sorted(starts) == sorted([*CHILDREN, *["booking-worker"] * 5]), "no other restart"
        assert len(watched) >= 2 + len(CHILDREN), [p.cmdline() for p in watched]
        assert left == [], output[-3000:]


@pytest.mark.slow
def test_sigterm_during_a_backoff_wait_stops_everything_and_restarts_nothing(
    cli: Cli, cli_env: dict[str, str], tmp_path: Path
) -> None:
    assert cli("migrate").returncode == 0
    cli_env.update(RUNNER_BACKOFF_S="30", WORKER_METRICS_PORT="0")
    with appointments_run(tmp_path, cli_env) as running:
        worker = wait_for(new_pid(running, "booking-worker", 0), 20, "booking-worker", running)
        watched = [psutil.Process(running.proc.pid), psutil.Process(worker)]
        os.kill(worker, signal.SIGKILL)
        wait_for(
            lambda: "was killed by SIGKILL: restart 1 in 30 s" in running.output() or None,
            5,
            "the restart scheduled",
            running,
        )
        watched += running.descendants()
        watched.append(psutil.Process(redis_url_and_pid(running)[1]))

        os.kill(running.proc.pid, signal.SIGTERM)
        code = running.proc.wait(timeout=STOP_WITHIN_S)

        output = running.output()
        assert code == 0, output[-3000:]
        assert "SIGTERM received: stopping" in output
        assert child_pids(running)["booking-worker"] == worker, "not restarted"
        assert survivors(watched, group=running.proc.pid) == [], output[-3000:]
