"""Section `bottleneck` (issue 17, item 5): which limit a booking service meets first.

Agent-shaped traffic (two 7-day availability reads of the busy branch per booking, as a call
checks twice and books once) from 20 clients against one booking process, as fast as it
answers. The CPU each process spent per second of the run says who is saturated: the booking
process near one full core while MariaDB and Redis use a fraction of theirs means the first
limit is the application's CPU (more pods), not the database (docs/capacity.md).
"""

from __future__ import annotations

import math

import httpx

from tests.bench import load
from tests.bench.dataset import local_day
from tests.bench.load import RunResult
from tests.bench.report import Figure
from tests.bench.scenarios import Bench, availability_request, booking_request

CONCURRENCY = 20
SATURATED_CORES = 0.85  # the booking process (one uvicorn process: at most one core)
DATABASE_CORES = 0.5  # MariaDB well below its machine while the application is saturated


def _mixed(bench: Bench, count: int) -> load.MakeRequest:
    tenant = bench.tenant
    book = booking_request(bench, count // 3 + 1)

    def make(i: int) -> load.Request:
        if i % 3 == 2:
            return book(i // 3)
        return availability_request(tenant, local_day(1 + i % 7))

    return make


def _answered(response: httpx.Response) -> str | None:
    if response.status_code == 201:
        return None
    if response.status_code == 200 and response.json().get("slots"):
        return None
    return f"{response.status_code} {response.text[:300]}"


def cores(run: RunResult, process: str) -> float:
    """CPU cores `process` used on average during the run (CPU per request x rate)."""
    per_request = run.cpu_ms.get(process)
    if per_request is None:
        return math.nan
    return per_request * run.throughput / 1000


async def section(bench: Bench) -> list[Figure]:
    count = bench.counts.booking_c20
    warm = 2 * CONCURRENCY
    run = await bench.run(
        bench.booking_url,
        f"agent-shaped mix (2 availability : 1 booking) c={CONCURRENCY}",
        _mixed(bench, warm + count),
        count,
        CONCURRENCY,
        _answered,
        warmup=warm,
    )
    used = {name: cores(run, name) for name in ("server", "mariadb", "redis", "client")}
    print(
        "  CPU cores in use during the mix: "
        + ", ".join(f"{name} {value:.2f}" for name, value in used.items())
        + f"; {run.throughput:.0f} requests/s"
    )
    return [
        Figure(
            "B booking process CPU under the mix (saturated: first limit)",
            used["server"],
            None,
            SATURATED_CORES,
            "cores",
            higher_is_better=True,
        ),
        Figure(
            "B MariaDB CPU under the same mix (not the limit)",
            used["mariadb"],
            None,
            DATABASE_CORES,
            "cores",
        ),
    ]
