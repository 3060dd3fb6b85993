"""`python -m tests.bench`: set up, measure, print the table, tear down.

Exit code 0 when the bench ran, whatever the figures (it is a report); 1 when a request of a
measured run failed; 2 when the bench itself broke (setup, servers).

BENCH_ONLY=policy (or a comma-separated list of sections: availability, booking, statements,
agent, wrk, evaluate, effective, webhooks, callbacks, notifications, scaling; "policy" means
evaluate and effective) runs only those sections. `soak` (BENCH_SOAK_SECONDS, default 600)
runs only when named. The resident memory of every service process closes the table.
BENCH_WRK_SECONDS (default 10) is the length of each wrk run; BENCH_SCALING_SIZES (default
2000,20000,200000) and BENCH_SCALING_BOOKING_AT (default 100000) size the scaling section.
BENCH_POLICY_WORKERS=N (default 2) also measures the policy figures against N policy
processes (replicas behind a balancer); 1 skips that second measurement.
BENCH_WEBHOOK_RATE (default 50/s), BENCH_WEBHOOK_SECONDS (default 20) and
BENCH_WEBHOOK_WORKERS (default 1) shape the ack -> applied run (workers beside the load).
"""

from __future__ import annotations

import asyncio
import os
import platform
import sys
import time
import traceback
from contextlib import AsyncExitStack
from datetime import date, timedelta
from importlib.util import find_spec

import psutil
import redis.asyncio as aioredis
from sqlalchemy import text

from shared.config import Settings
from shared.db.engine import Database
from tests.bench import bottleneck, scaling, scenarios, soak, webhooks, wrk_load
from tests.bench import callbacks as callback_bench
from tests.bench import notifications as notification_bench
from tests.bench.dataset import (
    EFFECTIVE_COMPANIES,
    BenchTenant,
    CompanyPolicy,
    SlotPlan,
    create_bench_tenant,
    create_policy_companies,
)
from tests.bench.memory import MemoryLog
from tests.bench.report import Figure, table
from tests.bench.scenarios import Bench, Counts
from tests.bench.statements import BASELINE_STATEMENTS, StatementCase, count_statements
from tests.conftest import create_mysql_database, drop_mysql_database
from tests.support.migrations import migrate
from tests.support.servers import ServerGroup

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
SECTIONS = (
    "availability",
    "booking",
    "statements",
    "agent",
    "bottleneck",
    "wrk",
    "evaluate",
    "effective",
    "webhooks",
    "callbacks",
    "notifications",
    "scaling",
)
ONLY_WHEN_NAMED = ("soak",)  # not part of the default run
ALIASES = {"policy": ("evaluate", "effective"), "all": SECTIONS}
# High enough that the limiter never refuses the load; it still runs on every request.
RATE_LIMITS = {
    "RATE_LIMIT_PER_KEY_PER_MINUTE": "10000000",
    "RATE_LIMIT_PER_NUMBER_PER_MINUTE": "10000000",
}


def selected_sections(raw: str | None) -> frozenset[str]:
    """The sections BENCH_ONLY names (all when unset or empty); unknown names are an error."""
    if not raw or not raw.strip():
        return frozenset(SECTIONS)
    chosen: set[str] = set()
    for name in (part.strip().lower() for part in raw.split(",")):
        if not name:
            continue
        if name in ALIASES:
            chosen.update(ALIASES[name])
        elif name in SECTIONS or name in ONLY_WHEN_NAMED:
            chosen.add(name)
        else:
            names = ", ".join((*SECTIONS, *ONLY_WHEN_NAMED, *ALIASES))
            raise ValueError(f"BENCH_ONLY: unknown section {name!r} (choose from {names})")
    return frozenset(chosen)


async def _flush_redis() -> None:
    """The bench's own Redis database (BENCH_REDIS_URL, default db 13): rate-limit buckets,
    cache entries and the outbox jobs nobody consumes here."""
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


async def _describe(db: Database) -> str:
    async with db.engine.connect() as conn:
        version = await conn.scalar(text("SELECT VERSION()"))
    loop = "uvloop" if find_spec("uvloop") else "asyncio"
    http = "httptools" if find_spec("httptools") else "h11"
    return (
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, MariaDB {version}, "
        f"uvicorn 1 process per app, policy also as replicas ({loop} loop, {http}), "
        "load from this process (httpx)"
    )


def _shared_processes() -> dict[str, psutil.Process]:
    """This process (the load generator) and, when local, MariaDB and Redis (read only)."""
    found = {"client": psutil.Process()}
    names = {"mariadbd": "mariadb", "mysqld": "mariadb", "redis-server": "redis"}
    for proc in psutil.process_iter(["name"]):
        label = names.get(proc.info["name"] or "")
        if label and label not in found:
            found[label] = proc
    return found


def _statement_figure(cases: list[StatementCase]) -> Figure:
    print("\n3. SQL statements per successful booking (in-process, before_cursor_execute):")
    for case in cases:
        print(
            f"  {case.name:<40} {case.statements} statements "
            f"(+{case.commits} COMMIT, {case.checkouts} pool checkout with pre-ping)"
        )
    worst = max(cases, key=lambda c: c.statements)
    print(f"  statements of '{worst.name}':")
    for sql in worst.sql:
        print(f"    {sql}")
    return Figure(
        "3 SQL statements per booking (worst case)",
        float(worst.statements),
        float(BASELINE_STATEMENTS),
        8,
        "stmts",
    )


def _settings(url: str, tenant: BenchTenant) -> Settings:
    return Settings(
        environment="test",
        database_url=url,
        redis_url=REDIS_URL,
        service_api_key=tenant.service_key,
        log_json=False,
        log_level="WARNING",
    )


def _register(bench: Bench, *groups: ServerGroup) -> None:
    """Every process of the groups, for the CPU-per-request figures; a group of several
    processes is one target whose requests are spread over them (replicas behind a balancer)."""
    for group in groups:
        for url, proc in zip(group.urls, group.procs, strict=True):
            bench.servers[url] = psutil.Process(proc.pid)
        bench.replicas[group.urls[0]] = tuple(group.urls)


async def _policy_sections(bench: Bench, sections: frozenset[str]) -> list[Figure]:
    figures: list[Figure] = []
    if "evaluate" in sections:
        print(f"\n5. Policy evaluate (service key + X-Company-ID, as booking asks){bench.tag}")
        figures += await scenarios.policy(bench)
    if "effective" in sections:
        print(f"\n6. Effective config, {len(bench.companies)} companies (GET, warm){bench.tag}")
        figures += await scenarios.effective(bench)
    return figures


async def _webhook_section(
    bench: Bench, url: str, env: dict[str, str], counts: Counts, memory: MemoryLog
) -> list[Figure]:
    """Figures 7 and 8: acknowledgement against one process, then against
    BENCH_WEBHOOK_REPLICAS (default 2; 1 skips it) processes of ours and of the baseline;
    then acknowledgement -> applied with the webhooks worker running."""
    db = Database(settings=Settings(database_url=url, environment="test"))
    env = {**env, "BENCH_WEBHOOK_SECRET": webhooks.SECRET}
    replicas = int(os.environ.get("BENCH_WEBHOOK_REPLICAS", "2"))
    n = (counts.webhook_c10, counts.webhook_c50)
    try:
        tenant = await webhooks.create_webhook_tenant(db)
        figures: list[Figure] = []
        async with (
            ServerGroup("services.webhooks.app:create", 1, env) as server,
            ServerGroup("tests.bench.baseline:create", 1, env) as baseline,
        ):
            _register(bench, server, baseline)
            print("\n7. Webhook acknowledgement (signed Cal.com BOOKING_CREATED, first deliveries)")
            figures += await webhooks.ack_figures(
                bench, tenant, n, server.urls, baseline.urls, date.today() + timedelta(days=3)
            )
            bench.webhooks_url = server.urls[0]
            rate = float(os.environ.get("BENCH_WEBHOOK_RATE", "50"))
            seconds = float(os.environ.get("BENCH_WEBHOOK_SECONDS", "20"))
            print(f"\n8. Webhook acknowledgement -> applied ({rate:.0f}/s, worker running)")
            figures += await webhooks.applied_figure(bench, db, tenant, env, rate, seconds)
            memory.record("webhooks", server.procs)
        if replicas > 1:
            async with (
                ServerGroup("services.webhooks.app:create", replicas, env) as server,
                ServerGroup("tests.bench.baseline:create", replicas, env) as baseline,
            ):
                _register(bench, server, baseline)
                print(f"\n7b. Webhook acknowledgement, {replicas} processes each (replicas)")
                figures += await webhooks.ack_figures(
                    bench, tenant, n, server.urls, baseline.urls, date.today() + timedelta(days=400)
                )
                memory.record(f"webhooks ({replicas} procs)", server.procs)
        return figures
    finally:
        await db.dispose()


async def _measure(
    url: str,
    tenant: BenchTenant,
    companies: tuple[CompanyPolicy, ...],
    counts: Counts,
    sections: frozenset[str],
    memory: MemoryLog,
) -> tuple[list[Figure], Bench]:
    env = {
        "DATABASE_URL": url,
        "REDIS_URL": REDIS_URL,
        "ENVIRONMENT": "test",
        "SERVICE_API_KEY": tenant.service_key,
        "BENCH_COMPANY_ID": tenant.company_id,
        **RATE_LIMITS,
    }
    figures: list[Figure] = []
    needs_booking = bool(
        sections & {"availability", "booking", "agent", "bottleneck", "wrk", "soak"}
    )
    async with ServerGroup("services.policy.app:create", 1, env) as policy:
        env["POLICY_SERVICE_URL"] = policy.urls[0]
        async with AsyncExitStack() as stack:
            baseline = await stack.enter_async_context(
                ServerGroup("tests.bench.baseline:create", 1, env)
            )
            booking = (
                await stack.enter_async_context(ServerGroup("services.booking.app:create", 1, env))
                if needs_booking
                else None
            )
            bench = Bench(
                tenant=tenant,
                plan=SlotPlan([staff_id for staff_id, _ in tenant.book_staff]),
                booking_url=booking.urls[0] if booking else "",
                policy_url=policy.urls[0],
                baseline_url=baseline.urls[0],
                counts=counts,
                companies=companies,
            )
            _register(bench, policy, baseline, *([booking] if booking else []))
            bench.shared = _shared_processes()
            if "availability" in sections:
                print("\n1. Availability")
                figures += await scenarios.availability(bench)
            if "booking" in sections:
                print("\n2. Booking (distinct slots, a new customer each)")
                figures += await scenarios.booking(bench)
            if "statements" in sections:
                cases = await count_statements(
                    tenant, bench.plan, _settings(url, tenant), bench.next_phone
                )
                bench.next_phone += 10
                figures.append(_statement_figure(cases))
            if "agent" in sections:
                print("\n4. Agent function book_appointment (signed, one call at a time)")
                figures += await scenarios.agent(bench)
            if "bottleneck" in sections:
                print("\nB. The first limit: agent-shaped traffic, as fast as one process answers")
                figures += await bottleneck.section(bench)
            if "wrk" in sections:
                print("\n4w. wrk (external load generator) beside the Python generator")
                figures += await wrk_load.section(bench)
            figures += await _policy_sections(bench, sections)
            if "webhooks" in sections:
                figures += await _webhook_section(bench, url, env, counts, memory)
            if "soak" in sections:
                print("\nS. Soak: steady bookings, availability and webhooks")
                figures += await soak.section(bench, url, env, memory)
            memory.record("booking", booking.procs if booking else [])
            memory.record("baseline", baseline.procs)
        memory.record("policy", policy.procs)
    workers = int(os.environ.get("BENCH_POLICY_WORKERS", "2"))
    if workers > 1 and sections & {"evaluate", "effective"}:
        # As deployed: replicas (k8s) of the policy service, each one uvicorn process, with the
        # baseline scaled alike; the balancer is the load generator spreading requests evenly.
        async with (
            ServerGroup("services.policy.app:create", workers, env) as policy,
            ServerGroup("tests.bench.baseline:create", workers, env) as baseline,
        ):
            replicated = bench.replicated(
                policy_url=policy.urls[0], baseline_url=baseline.urls[0], processes=workers
            )
            _register(replicated, policy, baseline)
            figures += await _policy_sections(replicated, sections)
            bench.warmup_errors = replicated.warmup_errors
            memory.record(f"policy ({workers} procs)", policy.procs)
            memory.record(f"baseline ({workers} procs)", baseline.procs)
    # Late: seeding 100,000 callbacks leaves InnoDB flushing for minutes, which the load
    # sections above (ours and their baselines alike) would pay for.
    if "callbacks" in sections:
        print("\n9. Callbacks: overdue list and escalation scan, 100,000 rows (in-process)")
        figures += await callback_bench.section(url)
    if "notifications" in sections:
        print("\n10. Notifications: effective config of 50 branches, warm (in-process)")
        figures += await notification_bench.effective_figures(url, REDIS_URL)
    # Very last: the 200,000 appointments it seeds leave InnoDB flushing, as the callbacks do.
    if "scaling" in sections:
        print("\n11. Scaling: one branch of 50 staff grown to 200,000 appointments")
        figures += await scaling.section(
            url,
            env,
            _settings(url, tenant),
            (counts.availability, counts.booking_c20),
            bench.shared,
            bench.runs,
            memory,
        )
    return figures, bench


async def main() -> int:
    started = time.monotonic()
    os.environ.update(RATE_LIMITS)  # the in-process app of figure 3 reads them too
    counts = Counts().scaled(float(os.environ.get("BENCH_SCALE", "1")))
    try:
        sections = selected_sections(os.environ.get("BENCH_ONLY"))
    except ValueError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    try:
        await _flush_redis()
        url = await create_mysql_database()
    except Exception:
        traceback.print_exc()
        print("bench: MariaDB or Redis unreachable", file=sys.stderr)
        return 2
    try:
        await migrate(url, "upgrade", "head")
        db = Database(settings=Settings(database_url=url, environment="test"))
        try:
            print(f"bench: {await _describe(db)}")
            setup_started = time.monotonic()
            tenant = await create_bench_tenant(db)
            companies = (
                await create_policy_companies(db, EFFECTIVE_COMPANIES)
                if "effective" in sections
                else ()
            )
        finally:
            await db.dispose()
        print(f"bench: tenant ready in {time.monotonic() - setup_started:.1f} s")
        memory = MemoryLog()
        figures, bench = await _measure(url, tenant, companies, counts, sections, memory)
        figures += memory.figures()
    except Exception:
        traceback.print_exc()
        print("bench: broke before finishing", file=sys.stderr)
        return 2
    finally:
        await drop_mysql_database(url)
        await _flush_redis()
    print("\nAll runs (ms; throughput = successful requests / wall time):")
    for run in bench.runs:
        print("  " + run.summary())
    load1, load5, _ = os.getloadavg()
    print(
        f"\nbench: {bench.plan.taken} booking slots used; total {time.monotonic() - started:.0f} s;"
        f" load average {load1:.1f} (1 min), {load5:.1f} (5 min)"
    )
    print(table(figures))
    failed = [run for run in bench.runs if run.errors]
    if failed or bench.warmup_errors:
        print(
            f"bench: {len(failed)} measured runs had failed requests "
            f"({bench.warmup_errors} failed in warm-ups)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
