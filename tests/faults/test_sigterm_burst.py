"""SIGTERM during a burst of notification jobs: every message sent exactly once (issue 14, item
5; ADR 0020), on both backends.

Real processes and servers: the notifications worker exactly as `appointments run` starts it
(`tools.children.child_commands`), a real SMTP relay (aiosmtpd) that answers each DATA a second
after it took the message in, and the fake SMS gateway. 50 confirmations are queued; the
worker gets SIGTERM while the relay holds messages it has not yet acknowledged, with a drain
shorter than a send (WORKER_DRAIN_TIMEOUT_S=0.5), so the stop really cancels jobs mid-send; a
second worker starts at once, as a rolling restart would. Counted at the relay by Message-ID
and at the gateway by Idempotency-Key: 50 + 50 distinct, none twice, every row `sent`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from arq.connections import ArqRedis, create_pool

from services.notifications.channels.email import message_id_for
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.jobs import outbox
from shared.jobs.queue import NOTIFY_QUEUE, redis_settings
from shared.models import NotificationDelivery, OutboxEvent
from tests.conftest import Services
from tests.faults.report import record_fault
from tests.notifications.slow_smtp import SlowSmtpServer
from tests.support.factories import Salon, create_salon, next_weekday
from tests.support.fake_messaging import FakeMessagingProvider
from tools.children import child_commands

ROOT = Path(__file__).resolve().parents[2]
BERLIN = ZoneInfo("Europe/Berlin")
BURST = 50
REPLY_DELAY_S = 1.0  # the relay's "250" comes this long after it has the message
DRAIN_S = 0.5  # shorter than a send: the stop cancels jobs whose message the relay holds
STOP_AFTER = 12  # messages the relay has taken in when the SIGTERM comes
GATEWAY_TOKEN = "sms-burst-token"
CUT_OFF = "notification delivered before stopping"  # services/notifications/delivery.py


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[ArqRedis]:
    redis = await create_pool(redis_settings(settings))
    yield redis
    await redis.aclose()


def worker_env(settings: Settings, smtp: SlowSmtpServer, gateway: FakeMessagingProvider) -> dict:
    env = {
        **os.environ,
        "APP_ENV": "test",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url or "",
        "SMTP_HOST": smtp.host,
        "SMTP_PORT": str(smtp.port),
        "SMTP_TIMEOUT_S": "5",
        "SMS_PROVIDER_URL": gateway.url,
        "SMS_PROVIDER_TOKEN": GATEWAY_TOKEN,
        "ALLOW_PRIVATE_OUTBOUND_URLS": "true",  # the fakes listen on 127.0.0.1
        "WORKER_DRAIN_TIMEOUT_S": str(DRAIN_S),
        "WORKER_METRICS_PORT": "0",
        "LOG_LEVEL": "INFO",
        "LOG_JSON": "false",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("ENVIRONMENT", None)
    return env


def start_worker(settings: Settings, env: dict, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            child_commands(settings)["notifications-worker"],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


async def wait_for(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


async def book_burst(services: Services, salon: Salon) -> list[str]:
    """BURST appointments (two staff, five days, five hours), each a new customer."""
    slots = [
        (staff, day, hour)
        for staff in salon.staff_ids
        for day in range(5)
        for hour in (9, 10, 11, 14, 15)
    ]
    ids = []
    for n, (staff, day, hour) in enumerate(slots[:BURST]):
        date = next_weekday(day, at_least_days=3)
        response = await services.clients["booking"].post(
            "/v1/appointments",
            json={
                "service_id": salon.service_id,
                "staff_id": staff,
                "start": datetime(date.year, date.month, date.day, hour, tzinfo=BERLIN).isoformat(),
                "customer": {
                    "name": f"Kundin {n}",
                    "phone": f"+49170{1000000 + n}",
                    "email": f"burst-{n}-{uuid.uuid4().hex[:6]}@example.com",
                },
            },
            headers=salon.headers,
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


async def company_rows(db: Database, company_id: str) -> list[NotificationDelivery]:
    async with db.transaction(SYSTEM, write=False) as session:
        rows = await session.scalars(
            sa.select(NotificationDelivery).where(NotificationDelivery.company_id == company_id)
        )
        return list(rows)


async def notify_events(db: Database, company_id: str) -> dict[str, str]:
    """The company's notify outbox rows: id -> status."""
    async with db.transaction(SYSTEM, write=False) as session:
        rows = await session.execute(
            sa.select(OutboxEvent.id, OutboxEvent.status).where(
                OutboxEvent.company_id == company_id, OutboxEvent.queue == NOTIFY_QUEUE
            )
        )
        return {event_id: status for event_id, status in rows}


async def keep_only(pool: ArqRedis, job_ids: set[str]) -> None:
    """Our jobs alone on the notify queue (the suite shares the Redis database; earlier tests'
    leftovers are not this test's burst)."""
    queued = {raw.decode() for raw in await pool.zrange(NOTIFY_QUEUE, 0, -1)}
    assert job_ids <= queued, "the booking API enqueued every confirmation"
    foreign = queued - job_ids
    if foreign:
        await pool.zrem(NOTIFY_QUEUE, *foreign)
        await pool.delete(*(f"arq:job:{job}" for job in foreign))


async def test_sigterm_mid_burst_sends_every_message_exactly_once(
    services: Services, db: Database, settings: Settings, pool: ArqRedis, tmp_path: Path
) -> None:
    salon = await create_salon(db)
    company = salon.tenant.company_id
    await book_burst(services, salon)
    events = await notify_events(db, company)
    assert len(events) == BURST
    await keep_only(pool, {outbox.job_id(event_id) for event_id in events})

    async with (
        SlowSmtpServer(reply_delay_s=REPLY_DELAY_S) as smtp,
        FakeMessagingProvider(token=GATEWAY_TOKEN) as gateway,
    ):
        env = worker_env(settings, smtp, gateway)
        first = start_worker(settings, env, tmp_path / "first.log")
        second: subprocess.Popen[bytes] | None = None
        try:

            async def mid_send() -> bool:
                assert first.poll() is None, (tmp_path / "first.log").read_text()
                return len(smtp.messages) >= STOP_AFTER and smtp.in_flight > 0

            await wait_for(mid_send, 60, f"{STOP_AFTER} messages at the relay")
            held, in_flight = len(smtp.messages), smtp.in_flight
            first.send_signal(signal.SIGTERM)  # what Kubernetes sends the pod's process
            stopped_at = time.monotonic()
            second = start_worker(settings, env, tmp_path / "second.log")  # rolling restart
            code = await asyncio.to_thread(first.wait, DRAIN_S + REPLY_DELAY_S + 15)
            stop_s = time.monotonic() - stopped_at
            first_log = (tmp_path / "first.log").read_text()
            assert code == 0, first_log

            async def all_sent() -> bool:
                rows = await company_rows(db, company)
                done = set((await notify_events(db, company)).values()) == {"done"}
                return done and len(rows) == 2 * BURST and {r.status for r in rows} == {"sent"}

            await wait_for(all_sent, 60, "every delivery row to be sent")
            finished_s = time.monotonic() - stopped_at
        finally:
            stop(first)
            if second is not None:
                stop(second)

        rows = await company_rows(db, company)
        emails = [r for r in rows if r.channel == "email"]
        texts = [r for r in rows if r.channel == "sms"]
        received = Counter(str(m["Message-ID"]) for m in smtp.messages)
        ours = {message_id_for(r.id) for r in emails}
        keys = Counter(m.key for m in gateway.messages)
        missing_rows = 2 * BURST - len(rows)
        record_fault(
            "SIGTERM to the notifications worker mid-burst (rolling restart)",
            sent=2 * BURST,
            accepted=len([r for r in rows if r.status == "sent"]),
            refused=0,
            errors_500=0,  # the burst's bookings all answered 201 (book_burst asserts it)
            lost=missing_rows
            + len([mid for mid in ours if received[mid] == 0])
            + len({r.id for r in texts} - set(keys)),
            duplicated=sum(n - 1 for n in received.values()) + sum(n - 1 for n in keys.values()),
            recover_s=finished_s,
            note=f"{BURST} bookings -> {BURST} e-mails (counted at the SMTP relay by Message-ID) "
            f"+ {BURST} SMS (at the gateway by Idempotency-Key); signal with {in_flight} "
            f"message(s) unacknowledged at the relay, drain {DRAIN_S} s, worker exited in "
            f"{stop_s:.1f} s; time: SIGTERM -> every delivery sent",
        )
        assert (len(emails), len(texts)) == (BURST, BURST)
        # E-mail, counted at the relay by Message-ID: ours 50 distinct, each exactly once, and
        # no message of anyone twice.
        assert {mid: received[mid] for mid in ours} == dict.fromkeys(ours, 1)
        assert max(received.values()) == 1, received.most_common(3)
        # SMS, counted at the gateway by Idempotency-Key: each once, and no key sent again.
        assert {r.id for r in texts} <= set(keys) and max(keys.values()) == 1
        assert gateway.calls == len(gateway.messages)
        assert all(r.attempts == 1 and r.provider_message_id for r in rows)

    # The stop truly landed mid-send: the relay held unacknowledged messages, and the drain's
    # deadline cut jobs off during their sends, which finished and were recorded anyway.
    cut_off = first_log.count(CUT_OFF)
    print(
        f"\nSIGTERM mid-burst: relay held {held} ({in_flight} unacknowledged) at the signal; "
        f"{cut_off} sends finished after the drain's cancel; the worker exited in {stop_s:.1f} s; "
        f"all {2 * BURST} deliveries sent {finished_s:.1f} s after the signal"
    )
    assert in_flight > 0 and cut_off >= 1
    assert stop_s < DRAIN_S + REPLY_DELAY_S + 10
