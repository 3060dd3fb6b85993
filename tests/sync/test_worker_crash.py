"""A booking worker killed (SIGKILL) while Cal.com is committing our booking: ARQ runs the job
again in a new worker, which finds the booking by its metadata and adopts it. One booking.

Real processes: the fake Cal.com and both `arq` workers run as subprocesses, with
WORKER_JOB_TIMEOUT_S=5 so ARQ re-offers the dead worker's job after 5 + 10 s.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy import update

from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.jobs import outbox
from shared.models import Company, Service
from tests.conftest import Services
from tests.support.factories import create_salon, next_weekday
from tests.support.fake_calcom import ROOT, FakeCalcomProcess
from tests.sync.conftest import API_KEY, CalSalon, appointment, at, book, keep_only, sync_rows

EVENT_TYPE = 9101
CREATE = "POST /v2/bookings"


def start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url or "",
        "WORKER_JOB_TIMEOUT_S": "5",
        "ALLOW_PRIVATE_OUTBOUND_URLS": "true",  # the fake Cal.com listens on 127.0.0.1
        "LOG_LEVEL": "WARNING",
        "LOG_JSON": "false",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "arq", "services.booking.worker.WorkerSettings"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
    )


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


async def wait_for(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.1)


async def test_worker_killed_mid_job_reruns_it_and_books_once(
    services: Services, db: Database, settings: Settings, pool: ArqRedis
) -> None:
    async with FakeCalcomProcess(
        event_types=[(EVENT_TYPE, 30, "host-crash@example.com")], api_keys=[API_KEY]
    ) as fake:
        salon = await create_salon(db, buffer_after=0)
        async with db.transaction(SYSTEM) as session:
            await session.execute(
                update(Company)
                .where(Company.id == salon.tenant.company_id)
                .values(calcom_api_key=API_KEY, calcom_base_url=fake.url)
            )
            await session.execute(
                update(Service)
                .where(Service.id == salon.service_id)
                .values(calcom_event_type_id=EVENT_TYPE)
            )
        cal = CalSalon(salon, EVENT_TYPE)
        appointment_id = await book(services, cal, at(next_weekday(2), 10))
        [row] = await sync_rows(db, cal.company_id)
        await keep_only(pool, [outbox.job_id(row.id)])  # the booking API enqueued it
        # Cal.com commits the booking, then takes 10 s to answer: the kill lands in between
        # (long enough to kill, short enough that the fake has answered before it stops).
        await fake.control(delay_after_commit_s=10, times=1, match=CREATE)

        async def committed() -> bool:
            state: dict[str, Any] = await fake.state()
            return bool(state["performed"].get(CREATE) == 1)

        first = start_worker(settings)
        try:
            await wait_for(committed, 30, "Cal.com to commit the booking")
        finally:
            stop(first, signal.SIGKILL)
        killed_at = time.monotonic()
        assert first.returncode == -signal.SIGKILL
        stored = await appointment(db, appointment_id)
        assert (stored.sync_status, stored.calcom_booking_uid) == ("pending", None)

        async def synced() -> bool:
            return (await appointment(db, appointment_id)).sync_status == "synced"

        second = start_worker(settings)
        try:
            await wait_for(synced, 45, "the new worker to sync the appointment")
        finally:
            stop(second)
        recovered_s = time.monotonic() - killed_at
        print(f"\nworker crash: job re-run and synced {recovered_s:.1f} s after the kill")

        state = await fake.state()
        assert list(state["performed"].items()) == [(CREATE, 1)]
        assert state["calls"].get(CREATE) == 1  # the re-run adopted it by its metadata
        [(uid, booking)] = state["bookings"].items()
        assert booking["metadata"]["appointment_id"] == appointment_id
        assert booking["status"] == "accepted"
        assert state["violations"] == []
        stored = await appointment(db, appointment_id)
        assert (stored.calcom_booking_uid, stored.sync_status) == (uid, "synced")
        [done] = await sync_rows(db, cal.company_id)
        assert done.status == "done"
        assert done.attempts == 2  # the killed attempt left its trace before calling Cal.com
