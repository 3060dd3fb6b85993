"""Closed-loop load generation: fixed request counts, fixed concurrency.

Requests are described as httpx calls (`Request`) but sent over raw keep-alive connections
(`RawConnection`): httpx costs 2-9 ms of CPU per request, which on a 2-core machine is taken
from the servers being measured. Answers are checked as `httpx.Response` objects.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import psutil

# Request i of a run: (method, path, keyword arguments for httpx). Built at send time, so a
# signature carries a fresh timestamp.
Request = tuple[str, str, Mapping[str, Any]]
MakeRequest = Callable[[int], Request]
# The error of an answer, or None when it is what the scenario expects.
Check = Callable[[httpx.Response], str | None]


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of `values`; NaN for none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class RunResult:
    """Latencies (ms) of the successful requests of one run and its wall time."""

    label: str
    concurrency: int
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    # CPU time per successful request (ms): server, client, mariadb, redis, other (the rest
    # of the machine).
    cpu_ms: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def throughput(self) -> float:
        return self.ok / self.wall_s if self.wall_s > 0 else math.nan

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    def summary(self) -> str:
        text = (
            f"{self.label:<46} c={self.concurrency:<3} n={self.ok:<5} "
            f"p50={self.p(50):6.1f} p95={self.p(95):6.1f} p99={self.p(99):6.1f} ms "
            f"{self.throughput:7.1f}/s err={len(self.errors)}"
        )
        if self.cpu_ms:
            text += "  cpu ms/req " + " ".join(f"{k}={v:.1f}" for k, v in self.cpu_ms.items())
        return text


def _cpu_s(proc: psutil.Process) -> float:
    try:
        times = proc.cpu_times()
    except psutil.Error:
        return math.nan
    return float(times.user + times.system)


def _busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all CPUs)."""
    times = psutil.cpu_times()._asdict()
    # guest time is already part of user time on Linux; idle and iowait are not busy.
    idle = ("idle", "iowait", "guest", "guest_nice")
    return float(sum(v for k, v in times.items() if k not in idle))


def expect_status(*codes: int) -> Check:
    def check(response: httpx.Response) -> str | None:
        if response.status_code in codes:
            return None
        return f"{response.status_code} {response.text[:300]}"

    return check


def raw_request(host: str, request: Request) -> bytes:
    """The bytes of one described request (params, headers, json or content)."""
    method, path, kwargs = request
    params = kwargs.get("params")
    if params:
        path += ("&" if "?" in path else "?") + urlencode(params)
    headers = dict(kwargs.get("headers") or {})
    body = b""
    if "json" in kwargs:
        body = json.dumps(kwargs["json"]).encode()
        headers.setdefault("Content-Type", "application/json")
    elif "content" in kwargs:
        content = kwargs["content"]
        body = content if isinstance(content, bytes) else str(content).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def run(
    url: str | Sequence[str],
    label: str,
    make: MakeRequest,
    count: int,
    concurrency: int,
    check: Check,
    processes: Mapping[str, psutil.Process] | None = None,
) -> RunResult:
    """Send `count` requests from `concurrency` workers, each waiting for its answer; with
    several URLs (replicas) worker k keeps a connection to URL k mod n, as a balancer would.

    Each request is built when it is sent (a signature carries a fresh timestamp).
    `processes` (name -> process): their CPU time over the run is reported per request.
    """
    urls = [url] if isinstance(url, str) else list(url)
    result = RunResult(label, concurrency)
    indices = iter(range(count))

    async def worker(k: int) -> None:
        base = urls[k % len(urls)]
        host, _, port = base.removeprefix("http://").partition(":")
        conn = RawConnection(host, int(port))
        try:
            for index in indices:  # shared iterator: each index is taken by exactly one worker
                raw = raw_request(host, make(index))
                started = time.perf_counter()
                try:
                    status, body = await conn.request(raw)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    result.errors.append(f"{type(exc).__name__}: {exc}")
                    conn = RawConnection(host, int(port))
                    continue
                elapsed_ms = (time.perf_counter() - started) * 1000
                error = check(httpx.Response(status, content=body))
                if error is None:
                    result.latencies_ms.append(elapsed_ms)
                else:
                    result.errors.append(error)
        finally:
            await conn.close()

    return await _measured(result, [worker(k) for k in range(concurrency)], processes)


async def _measured(
    result: RunResult,
    workers: list[Coroutine[Any, Any, None]],
    processes: Mapping[str, psutil.Process] | None,
) -> RunResult:
    """Run the workers; wall time, and CPU per successful request of `processes`."""
    cpu_before = {name: _cpu_s(proc) for name, proc in (processes or {}).items()}
    busy_before = _busy_s()
    started = time.perf_counter()
    await asyncio.gather(*workers)
    result.wall_s = time.perf_counter() - started
    if result.ok and processes:
        for name, proc in processes.items():
            used = _cpu_s(proc) - cpu_before[name]
            result.cpu_ms[name] = used * 1000 / result.ok
        # Everything else the machine did meanwhile (other jobs on it skew the figures).
        other = _busy_s() - busy_before - sum(result.cpu_ms.values()) * result.ok / 1000
        result.cpu_ms["other"] = max(0.0, other) * 1000 / result.ok
    print("  " + result.summary(), flush=True)
    for error in result.errors[:3]:
        print(f"    error: {error}", flush=True)
    return result


class RawConnection:
    """One keep-alive HTTP/1.1 connection over asyncio streams: a load generator far cheaper
    per request than httpx, so that a 2-core machine spends its CPU on the servers measured.
    Requests are prepared bytes; answers are read by Content-Length."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def raw_post(host: str, path: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def warmed(
    url: str | Sequence[str],
    label: str,
    make: MakeRequest,
    count: int,
    concurrency: int,
    check: Check,
    warmup: int,
    processes: Mapping[str, psutil.Process] | None = None,
) -> tuple[RunResult, int]:
    """`run` after `warmup` unmeasured requests (requests 0..warmup-1; the measured ones
    follow them); the run and how many warm-up requests failed."""
    failed = 0
    if warmup:
        warm = await run(url, f"{label} (warm-up)", make, warmup, concurrency, check)
        failed = len(warm.errors)
    result = await run(url, label, lambda i: make(warmup + i), count, concurrency, check, processes)
    return result, failed


async def run_raw(
    url: str | Sequence[str],
    label: str,
    requests: list[bytes],
    concurrency: int,
    expected_status: int,
    processes: Mapping[str, psutil.Process] | None = None,
) -> RunResult:
    """`load.run` with prepared raw requests over `RawConnection`s (one per worker); with
    several URLs (replicas) worker k keeps a connection to URL k mod n, as a balancer would."""
    urls = [url] if isinstance(url, str) else list(url)
    result = RunResult(label, concurrency)
    items = iter(requests)

    async def worker(k: int) -> None:
        host, _, port = urls[k % len(urls)].removeprefix("http://").partition(":")
        conn = RawConnection(host, int(port))
        try:
            for raw in items:
                started = time.perf_counter()
                try:
                    status, body = await conn.request(raw)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    result.errors.append(f"{type(exc).__name__}: {exc}")
                    conn = RawConnection(host, int(port))
                    continue
                elapsed_ms = (time.perf_counter() - started) * 1000
                if status == expected_status:
                    result.latencies_ms.append(elapsed_ms)
                else:
                    result.errors.append(f"{status} {body[:300]!r}")
        finally:
            await conn.close()

    return await _measured(result, [worker(k) for k in range(concurrency)], processes)
