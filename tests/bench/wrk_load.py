"""Section `wrk` (issue 17, item 3): availability and booking driven by an external load
generator, so the client does not share a Python process with the measurement.

`wrk` (Debian package `wrk`) runs tests/bench/wrk/book.lua against our booking service and
the bare baseline: GET availability over one connection (as section 1's sequential client),
POST bookings over 20 connections, each body a distinct slot and a new customer's phone,
every answer's status counted. Its latency distribution (--latency) gives p50/p99, beside the
Python generator's figures of the same run. BENCH_WRK_SECONDS (default 10) per run.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

from services.booking.scheduling.availability import local_day_bounds
from tests.bench.dataset import ZONE, SlotPlan, local_day
from tests.bench.load import RunResult
from tests.bench.report import Figure
from tests.bench.scenarios import Bench, _bare_booking_body

SCRIPT = Path(__file__).resolve().parent / "wrk" / "book.lua"
SKIPPED = "skipped: wrk is not installed (apt-get install wrk)"
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_LATENCY = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_REQUESTS = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", re.MULTILINE)
_SOCKET = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)
_STATUSES = re.compile(r"^statuses:(.*)$", re.MULTILINE)
_EXHAUSTED = re.compile(r"^out of bodies: (\d+)", re.MULTILINE)


@dataclass
class WrkResult:
    requests: int = 0
    seconds: float = math.nan
    rate: float = math.nan
    latency_ms: dict[float, float] = field(default_factory=dict)  # percentile -> ms
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    out_of_bodies: int = 0

    def p(self, q: float) -> float:
        return self.latency_ms.get(q, math.nan)

    @property
    def failed(self) -> int:
        """Answers that were not 2xx (from the script's count) plus socket errors."""
        bad = sum(n for status, n in self.statuses.items() if not 200 <= status < 300)
        return bad + sum(self.socket_errors.values())

    def summary(self) -> str:
        return (
            f"n={self.requests:<6} p50={self.p(50):6.1f} p99={self.p(99):6.1f} ms "
            f"{self.rate:7.1f}/s statuses={self.statuses} socket errors={self.socket_errors}"
        )


def parse(output: str) -> WrkResult:
    """The figures of wrk's report (--latency) and of book.lua's done()."""
    result = WrkResult()
    for percent, value, unit in _LATENCY.findall(output):
        result.latency_ms[float(percent)] = float(value) * _UNITS_MS[unit]
    if found := _REQUESTS.search(output):
        result.requests = int(found[1])
        result.seconds = float(found[2]) * _UNITS_MS[found[3]] / 1000
    if found := _RATE.search(output):
        result.rate = float(found[1])
    if found := _NON_2XX.search(output):
        result.non_2xx = int(found[1])
    if found := _SOCKET.search(output):
        names = ("connect", "read", "write", "timeout")
        result.socket_errors = {n: int(v) for n, v in zip(names, found.groups(), strict=True)}
    if found := _STATUSES.search(output):
        for item in found[1].split():
            status, _, count = item.partition("=")
            result.statuses[int(status)] = int(count)
    if found := _EXHAUSTED.search(output):
        result.out_of_bodies = int(found[1])
    return result


async def drive(
    url: str,
    lines: Sequence[str],
    method: str,
    connections: int,
    seconds: int,
    headers: Mapping[str, str],
) -> WrkResult:
    """One wrk run of `lines` (POST bodies, each sent once; or GET paths, cycled)."""
    threads = min(2, connections)
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as folder:
        file = Path(folder) / "requests.txt"
        file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        args = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s"]
        args += ["--latency", "--timeout", "10s", "-s", str(SCRIPT)]
        for name, value in headers.items():
            args += ["-H", f"{name}: {value}"]
        args += [url, "--", str(file), str(threads), method]
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited with {proc.returncode}: {text[-500:]}")
    return parse(text)


def _find(runs: Sequence[RunResult], label: str) -> RunResult | None:
    return next((run for run in runs if run.label == label), None)


def _availability_paths(bench: Bench) -> tuple[list[str], list[str]]:
    """Section 1's requests (the window starting on each of 7 dates), ours and the baseline's."""
    tenant = bench.tenant
    ours, bare = [], []
    for offset in range(1, 8):
        first = local_day(offset)
        params = {
            "service_id": tenant.salon.service_id,
            "branch_id": tenant.salon.branch_id,
            "date": first.isoformat(),
            "days": 7,
        }
        ours.append("/v1/availability?" + urlencode(params))
        lo, _ = local_day_bounds(first, ZONE)
        _, hi = local_day_bounds(first + timedelta(days=6), ZONE)
        query = [("staff_id", s) for s in tenant.busy_staff_ids]
        query += [("from", lo.isoformat()), ("to", hi.isoformat())]
        bare.append("/availability?" + urlencode(query))
    return ours, bare


def _booking_bodies(bench: Bench, count: int) -> list[str]:
    tenant = bench.tenant
    slots = bench.plan.take(count)
    phones = bench.phones(count)
    return [
        json.dumps(
            {
                "service_id": tenant.book_service_id,
                "staff_id": staff_id,
                "start": start.isoformat(),
                "customer": {"name": f"Kunde wrk {i}", "phone": phones[i]},
            }
        )
        for i, (staff_id, start) in enumerate(slots)
    ]


def _bare_bodies(bench: Bench, count: int) -> list[str]:
    # The baseline checks no booking window: its slots lie far beyond ours.
    plan = SlotPlan([staff_id for staff_id, _ in bench.tenant.book_staff], 120, 1500)
    return [json.dumps(_bare_booking_body(bench.tenant, *slot)) for slot in plan.take(count)]


def _compare(name: str, python: RunResult | None, wrk: WrkResult) -> None:
    if python is not None:
        print(
            f"    {name:<22} python: p50={python.p(50):6.1f} p99={python.p(99):6.1f} ms "
            f"{python.throughput:7.1f}/s errors={len(python.errors)}"
        )
    print(f"    {name:<22} wrk:    {wrk.summary()}")
    if wrk.out_of_bodies:
        print(
            f"    {name}: {wrk.out_of_bodies} wrk threads ran out of bodies before the end: "
            "its requests/s is a lower bound"
        )


async def section(bench: Bench) -> list[Figure]:
    if shutil.which("wrk") is None:
        print(f"  {SKIPPED}")
        return []
    seconds = int(os.environ.get("BENCH_WRK_SECONDS", "10"))
    headers = dict(bench.tenant.salon.headers)
    ours_paths, bare_paths = _availability_paths(bench)
    avail = await drive(bench.booking_url + "/", ours_paths, "GET", 1, seconds, headers)
    avail_base = await drive(bench.baseline_url + "/", bare_paths, "GET", 1, seconds, {})
    label = "availability 7 days, 2,000 appts in branch"
    print("  availability 7 days, 1 connection (sequential):")
    _compare("ours", _find(bench.runs, label), avail)
    _compare("baseline", _find(bench.runs, f"{label} [baseline]"), avail_base)

    # Enough bodies for twice the rate the Python generator saw (or a guess without it).
    label = "booking POST /v1/appointments c=20"
    python, python_base = _find(bench.runs, label), _find(bench.runs, f"{label} [baseline]")
    rate = python.throughput if python and python.ok else 400.0
    base_rate = python_base.throughput if python_base and python_base.ok else 1500.0
    room = bench.plan.capacity - bench.plan.taken - 100
    count = max(0, min(room, int(rate * seconds * 2) + 500))
    json_headers = {**headers, "Content-Type": "application/json"}
    book = await drive(
        bench.booking_url + "/v1/appointments",
        _booking_bodies(bench, count),
        "POST",
        20,
        seconds,
        json_headers,
    )
    book_base = await drive(
        bench.baseline_url + "/book",
        _bare_bodies(bench, int(base_rate * seconds * 2) + 500),
        "POST",
        20,
        seconds,
        {"Content-Type": "application/json"},
    )
    print("  booking POST, 20 connections (distinct slots, a new customer each):")
    _compare("ours", python, book)
    _compare("baseline", python_base, book_base)
    for name, result in (("ours", book), ("baseline", book_base)):
        if result.failed:
            print(f"    {name}: {result.failed} answers not 2xx or failed: {result.statuses}")
    return [
        Figure("1w availability 7 d: p50, 1 conn (wrk)", avail.p(50), avail_base.p(50), None, "ms"),
        Figure("1w availability 7 d: p99, 1 conn (wrk)", avail.p(99), avail_base.p(99), None, "ms"),
        Figure("2w booking: p50 at 20 conns (wrk)", book.p(50), book_base.p(50), None, "ms"),
        Figure("2w booking: p99 at 20 conns (wrk)", book.p(99), book_base.p(99), None, "ms"),
        Figure(
            "2w booking: throughput at 20 conns (wrk)",
            book.rate,
            book_base.rate,
            100,
            "/s",
            higher_is_better=True,
        ),
        Figure(
            "2w wrk answers not 2xx (availability, booking)",
            float(avail.failed + book.failed),
            float(avail_base.failed + book_base.failed),
            0,
            "n",
        ),
    ]
