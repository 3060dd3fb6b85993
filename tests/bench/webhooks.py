"""Webhook figures (issue 5): acknowledgement latency and throughput of
`POST /v1/webhooks/calcom/{company_id}` beside the bare baseline (HMAC check, one INSERT under
the dedupe key, one Redis push), and the time from acknowledgement to applied with the
webhooks worker running beside a paced load.

Every delivery is a distinct, correctly signed BOOKING_CREATED made in Cal.com for a mapped
event type and organizer, at a start time no other delivery uses, so each one is a first
delivery and each one, when applied, mirrors one appointment (the real work, not a no-op).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from redis.asyncio import Redis

from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.jobs.queue import WEBHOOKS_QUEUE
from shared.models import Company, Service, Staff, StaffService, WebhookEvent, WorkingHours
from tests.bench import load
from tests.bench.dataset import HOURS, ZONE
from tests.bench.load import RunResult, percentile
from tests.bench.report import Figure
from tests.bench.scenarios import Bench, machine_note
from tests.support.factories import create_salon
from tests.support.servers import ROOT

EVENT_TYPE_ID = 4242
ORGANIZERS = 40
SECRET = "bench-webhook-secret"


@dataclass(frozen=True)
class WebhookTenant:
    company_id: str
    organizers: tuple[str, ...]  # Cal.com user emails of the staff


async def create_webhook_tenant(db: Database) -> WebhookTenant:
    """A salon whose Cal.com event type 4242 is hosted by 40 staff members (organizers)."""
    salon = await create_salon(db, buffer_after=0)
    company_id = salon.tenant.company_id
    emails = tuple(f"host{n}@bench.example" for n in range(ORGANIZERS))
    async with db.transaction(company_id) as session:
        await session.execute(
            sa.update(Company).where(Company.id == company_id).values(calcom_webhook_secret=SECRET)
        )
        await session.execute(
            sa.update(Service)
            .where(Service.id == salon.service_id)
            .values(calcom_event_type_id=EVENT_TYPE_ID)
        )
        staff = [
            Staff(branch_id=salon.branch_id, name=f"Host {n}", calcom_user_email=email)
            for n, email in enumerate(emails)
        ]
        session.add_all(staff)
        await session.flush()
        for member in staff:
            session.add(StaffService(staff_id=member.id, service_id=salon.service_id))
            for weekday in range(7):
                for start, end in HOURS:
                    session.add(
                        WorkingHours(
                            staff_id=member.id, weekday=weekday, start_time=start, end_time=end
                        )
                    )
    return WebhookTenant(company_id, emails)


def _starts(first_day: date) -> Iterator[tuple[int, datetime]]:
    """(organizer, start) pairs no two deliveries share: 30-min steps, organizers round-robin."""
    day = first_day
    while True:
        for start, end in HOURS:
            at = datetime.combine(day, start, tzinfo=ZONE)
            stop = datetime.combine(day, end, tzinfo=ZONE)
            while at + timedelta(minutes=30) <= stop:
                for organizer in range(ORGANIZERS):
                    yield organizer, at.astimezone(UTC)
                at += timedelta(minutes=30)
        day += timedelta(days=1)


class Deliveries:
    """Signed first deliveries of BOOKING_CREATED, one distinct booking each."""

    def __init__(self, tenant: WebhookTenant, first_day: date) -> None:
        self.tenant = tenant
        self.slots = _starts(first_day)

    def body(self) -> bytes:
        organizer, start = next(self.slots)
        uid = uuid.uuid4().hex[:22]
        payload: dict[str, Any] = {
            "triggerEvent": "BOOKING_CREATED",
            "createdAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "payload": {
                "type": "30min",
                "title": "Herrenhaarschnitt",
                "startTime": start.isoformat().replace("+00:00", "Z"),
                "endTime": (start + timedelta(minutes=30)).isoformat().replace("+00:00", "Z"),
                "organizer": {
                    "id": organizer,
                    "name": f"Host {organizer}",
                    "email": self.tenant.organizers[organizer],
                    "timeZone": "Europe/Berlin",
                    "language": {"locale": "de"},
                },
                "attendees": [
                    {
                        "email": f"kunde-{uid}@example.com",
                        "name": "Kundin Bench",
                        "timeZone": "Europe/Berlin",
                        "language": {"locale": "de"},
                    }
                ],
                "eventTypeId": EVENT_TYPE_ID,
                "uid": uid,
                "bookingId": abs(hash(uid)) % 1_000_000,
                "metadata": {},
                "status": "ACCEPTED",
            },
        }
        return json.dumps(payload).encode()

    def headers(self, raw: bytes) -> dict[str, str]:
        signature = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        return {"content-type": "application/json", "x-cal-signature-256": signature}

    def request(self, path: str) -> load.Request:
        raw = self.body()
        return "POST", path, {"content": raw, "headers": self.headers(raw)}

    def prepared(self, host: str, path: str, count: int) -> list[bytes]:
        """`count` raw HTTP requests, signed before the clock starts."""
        out = []
        for _ in range(count):
            raw = self.body()
            out.append(load.raw_post(host, path, raw, self.headers(raw)))
        return out


async def _close_backlog(db: Database, company_id: str, redis_url: str) -> None:
    """Events acknowledged by the ack-only runs are not the applied run's business: mark them
    ignored (no worker ran) and empty the queue, so the worker starts with nothing to catch up."""
    client = Redis.from_url(redis_url)
    try:
        await client.delete(WEBHOOKS_QUEUE)
    finally:
        await client.aclose()
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            sa.update(WebhookEvent)
            .where(WebhookEvent.company_id == company_id, WebhookEvent.status == "pending")
            .values(status="ignored", error_message="bench: acknowledgement-only run")
        )


async def ack_figures(
    bench: Bench,
    tenant: WebhookTenant,
    counts: tuple[int, int],
    ours: Sequence[str],
    baseline: Sequence[str],
    first_day: date,
) -> list[Figure]:
    """p99 at 10 senders and throughput at 50, ours and the baseline, in one run; against
    one process each, or several (replicas, requests spread by connection)."""
    deliveries = Deliveries(tenant, first_day)
    tag = f" ({len(ours)} procs)" if len(ours) > 1 else ""
    ours_path = f"/v1/webhooks/calcom/{tenant.company_id}"
    base_path = f"/webhook/{tenant.company_id}"
    n10, n50 = counts
    results: dict[str, RunResult] = {}
    for name, urls, path in (
        ("ours", ours, ours_path),
        ("baseline", baseline, base_path),
    ):
        label = f"webhook ack, {name}{tag}"
        host = urls[0].removeprefix("http://")
        processes = {
            "server" if n == 0 else f"server{n + 1}": bench.servers[url]
            for n, url in enumerate(urls)
        }
        processes.update(bench.shared)
        for concurrency, count in ((10, n10), (50, n50)):
            warm = await load.run_raw(
                urls, f"{label} (warm-up)", deliveries.prepared(host, path, 200), concurrency, 202
            )
            bench.warmup_errors += len(warm.errors)
            requests = deliveries.prepared(host, path, count)
            result = await load.run_raw(urls, label, requests, concurrency, 202, processes)
            bench.runs.append(result)
            results[f"{name} c={concurrency}"] = result
    ours10, base10 = results["ours c=10"], results["baseline c=10"]
    ours50, base50 = results["ours c=50"], results["baseline c=50"]
    return [
        Figure(f"W1 webhook ack p99, 10 senders{tag}", ours10.p(99), base10.p(99), 20, "ms"),
        Figure(
            f"W2 webhook acks/s, 50 senders{tag}",
            ours50.throughput,
            base50.throughput,
            500,
            "/s",
            higher_is_better=True,
            note=machine_note(base50),
        ),
    ]


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """One webhooks worker process (ARQ, up to 10 jobs at a time), logging warnings only."""
    return subprocess.Popen(
        [sys.executable, "-m", "arq", "services.webhooks.worker.WorkerSettings"],
        cwd=ROOT,
        env={**os.environ, **env, "LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,  # ARQ logs every job at INFO; the figures tell the story
        start_new_session=True,
    )


async def applied_figure(
    bench: Bench,
    db: Database,
    tenant: WebhookTenant,
    env: dict[str, str],
    rate: float,
    seconds: float,
) -> list[Figure]:
    """Open-loop load at `rate` deliveries/s with the worker running; p95 of applied - acked
    (processed_at - created_at of each event, both stamped by our processes on this machine)."""
    await _close_backlog(db, tenant.company_id, env["REDIS_URL"])
    deliveries = Deliveries(tenant, date.today() + timedelta(days=200))
    path = f"/v1/webhooks/calcom/{tenant.company_id}"
    workers = [start_worker(env) for _ in range(int(os.environ.get("BENCH_WEBHOOK_WORKERS", "1")))]
    ids: list[str] = []
    errors: list[str] = []
    try:
        await asyncio.sleep(3)  # the worker connects and starts polling
        async with httpx.AsyncClient(base_url=bench.webhooks_url, timeout=30) as client:

            async def send() -> None:
                method, p, kwargs = deliveries.request(path)
                response = await client.request(method, p, **kwargs)
                if response.status_code == 202:
                    ids.append(response.json()["event_id"])
                else:
                    errors.append(f"{response.status_code} {response.text[:200]}")

            tasks = []
            started = time.perf_counter()
            total = int(rate * seconds)
            for n in range(total):
                delay = started + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(send()))
            await asyncio.gather(*tasks)
        deadline = time.monotonic() + 120
        statuses: dict[str, int] = {}
        while time.monotonic() < deadline:
            async with db.transaction(SYSTEM, write=False) as session:
                rows = (
                    await session.execute(
                        sa.select(WebhookEvent.status, sa.func.count())
                        .where(WebhookEvent.id.in_(ids))
                        .group_by(WebhookEvent.status)
                    )
                ).all()
            statuses = {status: count for status, count in rows}
            if statuses.get("pending", 0) + statuses.get("processing", 0) == 0:
                break
            await asyncio.sleep(1)
        async with db.transaction(SYSTEM, write=False) as session:
            rows = (
                await session.execute(
                    sa.select(WebhookEvent.created_at, WebhookEvent.processed_at).where(
                        WebhookEvent.id.in_(ids), WebhookEvent.processed_at.is_not(None)
                    )
                )
            ).all()
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=20)
    lags = [(done - acked).total_seconds() * 1000 for acked, done in rows]
    print(
        f"  applied: {len(lags)}/{len(ids)} events at {rate:.0f}/s for {seconds:.0f} s, "
        f"statuses {statuses}, p50 {percentile(lags, 50):.0f} ms, p95 {percentile(lags, 95):.0f}"
        f" ms, p99 {percentile(lags, 99):.0f} ms, send errors {len(errors)}"
    )
    for error in errors[:3]:
        print(f"    error: {error}")
    bench.warmup_errors += len(errors) + (len(ids) - len(lags))
    return [Figure("W3 webhook ack -> applied p95", percentile(lags, 95), None, 500, "ms")]
