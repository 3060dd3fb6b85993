"""Section `soak` (issue 17, item 4; BENCH_ONLY=soak, never part of the default run).

Steady, modest load for BENCH_SOAK_SECONDS (default 600): bookings (~5/s, distinct slots in
Nord, a new customer each), availability of Mitte (~10/s, 7 days) and signed Cal.com
webhooks (~5/s, a distinct first delivery each, applied by a webhooks worker). The resident
memory of each process is sampled every 10 s; the figure is the growth of the mean over the
last minute against the first minute after a 60 s warm-up (target under 5 %).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.models import WebhookEvent
from tests.bench import webhooks
from tests.bench.dataset import local_day
from tests.bench.load import percentile
from tests.bench.memory import MemoryLog, rss_mb, soak_growth
from tests.bench.report import Figure
from tests.bench.scenarios import Bench
from tests.support.servers import ServerGroup

WARMUP_S = 60.0
SAMPLE_EVERY_S = 10.0
TARGET_PERCENT = 5.0
RATES = {"booking": 5.0, "availability": 10.0, "webhook": 5.0}


@dataclass
class Stream:
    name: str
    expected: int
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: int = 0

    def line(self) -> str:
        return (
            f"  {self.name:<13} n={len(self.latencies_ms):<6} "
            f"p50={percentile(self.latencies_ms, 50):6.1f} "
            f"p95={percentile(self.latencies_ms, 95):6.1f} ms errors={len(self.errors)}"
            + (f" skipped={self.skipped} (slot plan used up)" if self.skipped else "")
        )


async def _paced(
    rate: float, seconds: float, send: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    """Open loop: a request every 1/rate s whatever the answers' latency."""
    tasks: list[asyncio.Task[None]] = []
    started = time.perf_counter()
    n = 0
    while n / rate < seconds:
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send()))
        n += 1
    await asyncio.gather(*tasks)


async def _request(
    client: httpx.AsyncClient, stream: Stream, method: str, url: str, **kwargs: object
) -> None:
    started = time.perf_counter()
    try:
        response = await client.request(method, url, **kwargs)  # type: ignore[arg-type]
    except httpx.HTTPError as exc:
        stream.errors.append(f"{type(exc).__name__}: {exc}")
        return
    if response.status_code == stream.expected:
        stream.latencies_ms.append((time.perf_counter() - started) * 1000)
    else:
        stream.errors.append(f"{response.status_code} {response.text[:200]}")


async def _sample(
    processes: Mapping[str, int], samples: dict[str, list[tuple[float, float]]], stop: float
) -> None:
    started = time.perf_counter()
    while True:
        now = time.perf_counter() - started
        for label, pid in processes.items():
            samples.setdefault(label, []).append((now, rss_mb(pid)))
        if now >= stop:
            return
        await asyncio.sleep(max(0.0, SAMPLE_EVERY_S - (time.perf_counter() - started - now)))


async def _event_statuses(url: str, company_id: str) -> dict[str, int]:
    db = Database(settings=Settings(database_url=url, environment="test"))
    try:
        async with db.transaction(SYSTEM, write=False) as session:
            rows = await session.execute(
                sa.select(WebhookEvent.status, sa.func.count())
                .where(WebhookEvent.company_id == company_id)
                .group_by(WebhookEvent.status)
            )
            return {str(status): int(count) for status, count in rows}
    finally:
        await db.dispose()


async def section(
    bench: Bench, url: str, env: Mapping[str, str], memory: MemoryLog
) -> list[Figure]:
    seconds = float(os.environ.get("BENCH_SOAK_SECONDS", "600"))
    db = Database(settings=Settings(database_url=url, environment="test"))
    try:
        hook_tenant = await webhooks.create_webhook_tenant(db)
    finally:
        await db.dispose()
    env = {**env, "BENCH_WEBHOOK_SECRET": webhooks.SECRET}
    tenant = bench.tenant
    deliveries = webhooks.Deliveries(hook_tenant, date.today() + timedelta(days=30))
    expected = {"booking": 201, "availability": 200, "webhook": 202}
    streams = {name: Stream(name, code) for name, code in expected.items()}
    samples: dict[str, list[tuple[float, float]]] = {}
    async with ServerGroup("services.webhooks.app:create", 1, env) as hooks:
        worker = webhooks.start_worker(env)
        try:
            processes = {
                "booking": bench.servers[bench.booking_url].pid,
                "policy": bench.servers[bench.policy_url].pid,
                "webhooks": hooks.procs[0].pid,
                "webhooks worker": worker.pid,
            }
            async with (
                httpx.AsyncClient(base_url=bench.booking_url, timeout=30) as booking,
                httpx.AsyncClient(base_url=hooks.urls[0], timeout=30) as hook_client,
            ):
                count = 0

                async def book() -> None:
                    try:
                        ((staff_id, start),) = bench.plan.take(1)
                    except RuntimeError:
                        streams["booking"].skipped += 1
                        return
                    body = {
                        "service_id": tenant.book_service_id,
                        "staff_id": staff_id,
                        "start": start.isoformat(),
                        "customer": {"name": "Soak Kundin", "phone": bench.phones(1)[0]},
                    }
                    await _request(
                        booking,
                        streams["booking"],
                        "POST",
                        "/v1/appointments",
                        json=body,
                        headers=tenant.salon.headers,
                    )

                async def availability() -> None:
                    nonlocal count
                    count += 1
                    params = {
                        "service_id": tenant.salon.service_id,
                        "branch_id": tenant.salon.branch_id,
                        "date": local_day(1 + count % 7).isoformat(),
                        "days": 7,
                    }
                    await _request(
                        booking,
                        streams["availability"],
                        "GET",
                        "/v1/availability",
                        params=params,
                        headers=tenant.salon.headers,
                    )

                async def webhook() -> None:
                    method, path, kwargs = deliveries.request(
                        f"/v1/webhooks/calcom/{hook_tenant.company_id}"
                    )
                    await _request(hook_client, streams["webhook"], method, path, **kwargs)

                print(f"  {seconds:.0f} s at {RATES} per second; RSS every {SAMPLE_EVERY_S:.0f} s")
                await asyncio.gather(
                    _sample(processes, samples, seconds),
                    _paced(RATES["booking"], seconds, book),
                    _paced(RATES["availability"], seconds, availability),
                    _paced(RATES["webhook"], seconds, webhook),
                )
            await asyncio.sleep(5)  # the worker applies what is still queued
            statuses = await _event_statuses(url, hook_tenant.company_id)
            print(f"  webhook events by status 5 s after the load: {statuses}")
            memory.record("webhooks (soak)", hooks.procs)
            memory.record("webhooks worker (soak)", [worker])
        finally:
            worker.terminate()
            worker.wait(timeout=20)
    for stream in streams.values():
        print(stream.line())
        for error in stream.errors[:3]:
            print(f"    error: {error}")
    figures = []
    for label, series in samples.items():
        first, last, grown = soak_growth(series, WARMUP_S)
        values = " ".join(f"{v:.0f}" for _, v in series)
        print(f"  RSS {label:<16} MB every {SAMPLE_EVERY_S:.0f} s: {values}")
        print(f"    first minute after warm-up {first:.1f} MB, last minute {last:.1f} MB")
        figures.append(Figure(f"M soak RSS growth: {label}", grown, None, TARGET_PERCENT, "%"))
    failed = sum(len(s.errors) for s in streams.values())
    figures.append(Figure("M soak failed requests", float(failed), None, 0, "n"))
    bench.warmup_errors += failed
    return figures
