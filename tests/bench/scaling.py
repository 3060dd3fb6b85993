"""Section `scaling` (issue 17, item 2): cost that grows with the work, not with the data.

One branch of 50 staff (tests/bench/scaling_data.py) is grown to 2,000, 20,000 and 200,000
appointments over two years; at each size GET /v1/availability (7 days, as section 1 asks
it) is measured against the booking server and the bare baseline, and at 2,000 and 100,000
the booking throughput at 20 clients. The window the requests read holds the same
appointments at every size, so the growth figure shows what the data around it costs.
At the largest size the availability statements' EXPLAIN plans go to docs/perf/.

BENCH_SCALING_SIZES (default 2000,20000,200000) and BENCH_SCALING_BOOKING_AT (default 100000)
shrink the run while developing.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from datetime import UTC, timedelta

import httpx
import psutil

from services.booking.scheduling.availability import local_day_bounds
from shared.config import Settings
from shared.db.engine import Database
from tests.bench import load
from tests.bench.dataset import ZONE, SlotPlan, analyze_tables, local_day, phone
from tests.bench.explain import OUTPUT, availability_plans, without_json
from tests.bench.load import RunResult, expect_status
from tests.bench.memory import MemoryLog
from tests.bench.report import Figure
from tests.bench.scaling_data import (
    BOOKING_DAYS,
    HISTORY_DAYS,
    ScalingBranch,
    create_scaling_branch,
    grow,
)
from tests.support.servers import ServerGroup

AVAILABILITY_TARGET_MS = 15.0  # section 1's target
GROWTH_TARGET = 1.5  # issue 17: p95 at 200,000 at most 1.5x the p95 at 2,000
BOOKING_TARGET = 100.0  # section 2's target at 20 clients
FIRST_PHONE = 5_000_000  # the scaling bookings' customers: numbers no other section uses


def sizes_from_env() -> tuple[tuple[int, ...], int]:
    """(availability sizes ascending, the size the second booking run is measured at)."""
    raw = os.environ.get("BENCH_SCALING_SIZES", "2000,20000,200000")
    sizes = tuple(sorted({int(part) for part in raw.split(",") if part.strip()}))
    booking_at = int(os.environ.get("BENCH_SCALING_BOOKING_AT", "100000"))
    if len(sizes) < 2 or booking_at <= sizes[0]:
        raise ValueError("BENCH_SCALING_SIZES needs two sizes, BOOKING_AT above the first")
    return sizes, booking_at


class ScalingRun:
    def __init__(
        self,
        branch: ScalingBranch,
        booking_url: str,
        baseline_url: str,
        processes: Mapping[str, Mapping[str, psutil.Process]],
        runs: list[RunResult],
    ) -> None:
        self.branch = branch
        self.booking_url = booking_url
        self.baseline_url = baseline_url
        self.processes = processes
        self.runs = runs
        self.plan = SlotPlan(list(branch.staff_ids), BOOKING_DAYS[0], BOOKING_DAYS[-1])
        # Past the history (days 365 on): the baseline checks no booking window.
        self.bare_plan = SlotPlan(list(branch.staff_ids), HISTORY_DAYS[-1] + 1, 500)
        self.next_phone = FIRST_PHONE
        self.first_days = [local_day(1 + i % 7) for i in range(1000)]

    def params(self, i: int) -> dict[str, str | int]:
        salon = self.branch.salon
        return {
            "service_id": salon.service_id,
            "branch_id": salon.branch_id,
            "date": self.first_days[i % len(self.first_days)].isoformat(),
            "days": 7,
        }

    async def _run(
        self,
        url: str,
        label: str,
        make: load.MakeRequest,
        count: int,
        concurrency: int,
        check: load.Check,
        warmup: int,
    ) -> RunResult:
        result, _failed = await load.warmed(
            url, label, make, count, concurrency, check, warmup, self.processes[url]
        )
        self.runs.append(result)
        return result

    async def availability(self, size: int, count: int) -> tuple[RunResult, RunResult]:
        headers = self.branch.salon.headers
        staff = self.branch.staff_ids

        def ours(i: int) -> load.Request:
            return "GET", "/v1/availability", {"params": self.params(i), "headers": headers}

        def bare(i: int) -> load.Request:
            first = self.first_days[i % len(self.first_days)]
            lo, _ = local_day_bounds(first, ZONE)
            _, hi = local_day_bounds(first + timedelta(days=6), ZONE)
            params: list[tuple[str, str]] = [("staff_id", s) for s in staff]
            params += [("from", lo.isoformat()), ("to", hi.isoformat())]
            return "GET", "/availability", {"params": params}

        def has_slots(response: httpx.Response) -> str | None:
            if response.status_code != 200 or not response.json()["slots"]:
                return f"{response.status_code} {response.text[:300]}"
            return None

        label = f"scaling: availability 7 days, {size:,} appts"
        mine = await self._run(self.booking_url, label, ours, count, 1, has_slots, 20)
        base = await self._run(
            self.baseline_url, f"{label} [baseline]", bare, count, 1, expect_status(200), 20
        )
        return mine, base

    async def booking(self, size: int, count: int) -> tuple[RunResult, RunResult]:
        """Ours at 20 clients, then the bare baseline's /book (far beyond the booking window,
        which it does not check) at 20 clients."""
        salon, warm = self.branch.salon, 40
        slots = self.plan.take(warm + count)
        bare_slots = self.bare_plan.take(warm + count)
        first_phone = self.next_phone
        self.next_phone += warm + count

        def make(i: int) -> load.Request:
            staff_id, start = slots[i]
            body = {
                "service_id": salon.service_id,
                "staff_id": staff_id,
                "start": start.isoformat(),
                "customer": {"name": f"Kunde {i}", "phone": phone(first_phone + i)},
            }
            return "POST", "/v1/appointments", {"json": body, "headers": salon.headers}

        def bare(i: int) -> load.Request:
            staff_id, start = bare_slots[i]
            body = {
                "company_id": self.branch.bare_company_id,
                "branch_id": salon.branch_id,
                "service_id": salon.service_id,
                "staff_id": staff_id,
                "customer_id": self.branch.customer_ids[i % len(self.branch.customer_ids)],
                "start": start.astimezone(UTC).isoformat(),
                "minutes": 30,
            }
            return "POST", "/book", {"json": body}

        label = f"scaling: booking c=20, {size:,} appts"
        created = expect_status(201)
        mine = await self._run(self.booking_url, label, make, count, 20, created, warm)
        base = await self._run(
            self.baseline_url, f"{label} [baseline]", bare, count, 20, created, warm
        )
        return mine, base


def growth(later: float, first: float) -> float:
    """later / first (NaN when either is missing or first is 0)."""
    if not first or math.isnan(first) or math.isnan(later):
        return math.nan
    return later / first


async def section(
    url: str,
    env: Mapping[str, str],
    settings: Settings,
    counts: tuple[int, int],
    shared: Mapping[str, psutil.Process],
    runs: list[RunResult],
    memory: MemoryLog,
) -> list[Figure]:
    """`counts`: (availability requests per size, bookings per booking run)."""
    sizes, booking_at = sizes_from_env()
    stages = sorted({*sizes, booking_at})
    db = Database(settings=Settings(database_url=url, environment="test"))
    try:
        started = time.monotonic()
        branch = await create_scaling_branch(db)
        print(
            f"  branch: {len(branch.staff_ids)} staff, layout of {branch.layout.capacity:,} "
            f"positions in {time.monotonic() - started:.1f} s",
            flush=True,
        )
        env = dict(env)
        async with ServerGroup("services.policy.app:create", 1, env) as policy:
            env["POLICY_SERVICE_URL"] = policy.urls[0]
            async with (
                ServerGroup("services.booking.app:create", 1, env) as booking,
                ServerGroup("tests.bench.baseline:create", 1, env) as baseline,
            ):
                processes = {
                    group.urls[0]: {"server": psutil.Process(group.procs[0].pid), **shared}
                    for group in (booking, baseline)
                }
                run = ScalingRun(branch, booking.urls[0], baseline.urls[0], processes, runs)
                p95: dict[int, tuple[float, float]] = {}
                throughput: dict[int, tuple[float, float]] = {}
                for size in stages:
                    started = time.monotonic()
                    added = await grow(db, branch, size)
                    seeded = time.monotonic() - started
                    await analyze_tables(db)
                    print(
                        f"  grown to {size:,} appointments: +{added:,} rows in {seeded:.1f} s "
                        f"({added / max(seeded, 1e-9):,.0f} rows/s), statistics refreshed",
                        flush=True,
                    )
                    if size in sizes:
                        mine, base = await run.availability(size, counts[0])
                        p95[size] = (mine.p(95), base.p(95))
                    if size in (sizes[0], booking_at):
                        mine, base = await run.booking(size, counts[1])
                        throughput[size] = (mine.throughput, base.throughput)
                last = sizes[-1]
                params = run.params(0)
                plans = await availability_plans(
                    settings, branch.salon.headers, params, f"{last:,} appointments in the branch"
                )
                print(f"\n  EXPLAIN at {last:,} appointments (with the JSON plans in {OUTPUT}):")
                print("    " + without_json(plans).replace("\n", "\n    "), flush=True)
                memory.record("booking (scaling)", booking.procs)
                memory.record("baseline (scaling)", baseline.procs)
            memory.record("policy (scaling)", policy.procs)
    finally:
        await db.dispose()
    first = sizes[0]
    figures = [
        Figure(
            f"S1 availability 7 d p95, {size:,} appts, 50 staff",
            ours,
            base,
            AVAILABILITY_TARGET_MS,
            "ms",
        )
        for size, (ours, base) in sorted(p95.items())
    ]
    figures.append(
        Figure(
            f"S2 availability p95 growth {last:,} / {first:,} appts",
            growth(p95[last][0], p95[first][0]),
            growth(p95[last][1], p95[first][1]),
            GROWTH_TARGET,
            "x",
        )
    )
    figures += [
        Figure(
            f"S3 booking throughput c=20, {size:,} appts",
            ours,
            base,
            BOOKING_TARGET,
            "/s",
            higher_is_better=True,
        )
        for size, (ours, base) in sorted(throughput.items())
    ]
    return figures
