"""The Redis circuit breaker against the real Redis: window, open, one probe, many processes.

Other OS processes (real `python -c` children sharing the same Redis) stand in for replicas:
they open the breaker, race for the half-open probe, or die holding it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pickle
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from shared.redis.circuit_breaker import CircuitBreaker, CircuitOpen
from shared.redis.connection import free_port

ROOT = Path(__file__).resolve().parents[2]


class Boom(Exception):
    """The protected dependency failing."""


class NotFound(Exception):
    """An answer, not an outage: must not count against the dependency."""


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    yield client
    await client.aclose()


def new_name() -> str:
    # No ':' in it: metrics label a breaker by its name up to the first ':' (its kind, e.g.
    # "calcom" for "calcom:<company id>"), so each test's breaker keeps series of its own.
    return f"test-{uuid.uuid4().hex}"


async def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            async with breaker.guard():
                raise Boom


async def succeed(breaker: CircuitBreaker) -> None:
    async with breaker.guard():
        pass


def metric(sample: str, /, **labels: str) -> float:
    return REGISTRY.get_sample_value(sample, labels) or 0.0


# -- subprocesses: the preamble gives each snippet `url`, `name`, `params` and `breaker` -------

PREAMBLE = """
import asyncio, json, os, sys
from redis.asyncio import Redis
from shared.redis.circuit_breaker import CircuitBreaker, CircuitOpen
url, name, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])

class Boom(Exception):
    pass

async def main():
    redis = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    breaker = CircuitBreaker(redis, name, **params)
    await redis.ping()
    print("ready", flush=True)
    await body(redis, breaker)
    await redis.aclose()
"""
RUN = "\nasyncio.run(main())\n"


async def spawn(
    body: str, redis_url: str, name: str, **params: float
) -> asyncio.subprocess.Process:
    """Start a child running `body` (an `async def body(redis, breaker)`); wait until ready."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PREAMBLE + body + RUN,
        redis_url,
        name,
        json.dumps(params),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line == b"ready\n", line
    return proc


async def finish(proc: asyncio.subprocess.Process, stdin: bytes = b"") -> str:
    """Send `stdin`, wait for the exit; returns stdout after the ready line."""
    out, err = await asyncio.wait_for(proc.communicate(stdin), 30)
    assert proc.returncode == 0, err.decode()
    return out.decode()


FAIL_FIVE_TIMES = """
async def body(redis, breaker):
    for _ in range(5):
        try:
            async with breaker.guard():
                raise Boom()
        except Boom:
            pass
    print(await breaker.state(), flush=True)
"""

TEN_CONCURRENT_AFTER_GO = """
async def body(redis, breaker):
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    async def call():
        try:
            async with breaker.guard():
                await redis.incr(f"calls:{name}")
                await asyncio.sleep(1.0)
            return "ran"
        except CircuitOpen:
            return "refused"

    results = await asyncio.gather(*(call() for _ in range(10)))
    print(json.dumps({"ran": results.count("ran"), "refused": results.count("refused")}))
"""

DIE_HOLDING_THE_PROBE = """
async def body(redis, breaker):
    async with breaker.guard():
        print("probe taken", flush=True)
        os._exit(0)  # no verdict ever reaches Redis, as when a replica is SIGKILLed
"""


# -- closed: the sliding window --------------------------------------------------------------


async def test_fifth_failure_in_the_window_opens(redis: Redis) -> None:
    breaker = CircuitBreaker(redis, new_name(), window_s=1, open_s=10)
    await fail(breaker, 4)
    assert await breaker.state() == "closed"

    await fail(breaker)
    assert await breaker.state() == "open"

    ran = False
    with pytest.raises(CircuitOpen) as refused:
        async with breaker.guard():
            ran = True
    assert ran is False
    assert refused.value.name == breaker.name
    assert 9.0 < refused.value.retry_after_s <= 10.0
    copy = pickle.loads(pickle.dumps(refused.value))
    assert (copy.name, copy.retry_after_s) == (breaker.name, refused.value.retry_after_s)


async def test_failures_older_than_the_window_do_not_count(redis: Redis) -> None:
    breaker = CircuitBreaker(redis, new_name(), window_s=0.6, open_s=10)
    await fail(breaker, 3)  # t = 0: out of the window by t = 0.7
    await asyncio.sleep(0.35)
    await fail(breaker)  # t = 0.35: still inside at t = 0.7 (and keeps the key alive)
    await asyncio.sleep(0.35)

    await fail(breaker, 3)
    assert await breaker.state() == "closed"  # 4 inside the window, 3 aged out
    await fail(breaker)
    assert await breaker.state() == "open"


async def test_successes_pass_and_do_not_touch_redis_while_closed(redis: Redis) -> None:
    breaker = CircuitBreaker(redis, new_name())
    for _ in range(3):
        await succeed(breaker)
    assert await redis.keys(f"breaker:{{{breaker.name}}}:*") == []


async def test_non_failure_exceptions_do_not_count(redis: Redis) -> None:
    breaker = CircuitBreaker(redis, new_name(), open_s=0.2)

    def outage(exc: BaseException) -> bool:
        return not isinstance(exc, NotFound)

    for _ in range(10):
        with pytest.raises(NotFound):
            async with breaker.guard(outage):
                raise NotFound
    assert await breaker.state() == "closed"

    # ... and as the half-open probe's outcome, such an exception closes the breaker.
    await fail(breaker, 5)
    await asyncio.sleep(0.25)
    with pytest.raises(NotFound):
        async with breaker.guard(outage):
            raise NotFound
    assert await breaker.state() == "closed"


# -- open and half-open ----------------------------------------------------------------------


async def test_after_open_s_one_probe_whose_success_closes(redis: Redis) -> None:
    breaker = CircuitBreaker(redis, new_name(), window_s=1, open_s=0.3)
    await fail(breaker, 5)
    with pytest.raises(CircuitOpen):
        await succeed(breaker)

    await asyncio.sleep(0.35)
    assert await breaker.state() == "half_open"
    await succeed(breaker)
    assert await breaker.state() == "closed"

    # Counters cleared: four fresh failures do not reopen it.
    await fail(breaker, 4)
    assert await breaker.state() == "closed"


async def test_probe_failure_reopens_for_open_s(redis: Redis) -> None:
    breaker = CircuitBreaker(redis, new_name(), window_s=1, open_s=0.3)
    await fail(breaker, 5)
    await asyncio.sleep(0.35)

    await fail(breaker)  # the probe
    assert await breaker.state() == "open"
    with pytest.raises(CircuitOpen) as refused:
        await succeed(breaker)
    assert 0.2 < refused.value.retry_after_s <= 0.3

    await asyncio.sleep(0.35)
    await succeed(breaker)
    assert await breaker.state() == "closed"


async def test_half_open_lets_exactly_one_of_twenty_concurrent_calls_through(
    redis: Redis,
) -> None:
    # A generous Redis budget: on a loaded CI machine 20 concurrent scripts may take longer
    # than the production 0.5 s, and failing open would let them all through (by design).
    breaker = CircuitBreaker(
        redis, new_name(), window_s=1, open_s=0.2, probe_timeout_s=5, redis_budget_s=5.0
    )
    await fail(breaker, 5)
    await asyncio.sleep(0.25)
    half_opened = metric("circuit_breaker_transitions_total", name=breaker.name, to="half_open")
    calls = 0

    async def call() -> str:
        nonlocal calls
        try:
            async with breaker.guard():
                calls += 1
                await asyncio.sleep(0.2)
            return "ran"
        except CircuitOpen as exc:
            assert 4.5 < exc.retry_after_s <= 5.0  # until the probe token would expire
            return "refused"

    results = await asyncio.gather(*(call() for _ in range(20)))
    assert calls == 1
    assert results.count("ran") == 1
    assert results.count("refused") == 19
    assert await breaker.state() == "closed"
    after = metric("circuit_breaker_transitions_total", name=breaker.name, to="half_open")
    assert after - half_opened == 1


async def test_probe_that_is_cancelled_gives_its_token_back(redis: Redis) -> None:
    breaker = CircuitBreaker(redis, new_name(), open_s=0.2, probe_timeout_s=30)
    await fail(breaker, 5)
    await asyncio.sleep(0.25)
    entered = asyncio.Event()

    async def hanging_probe() -> None:
        async with breaker.guard():
            entered.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(hanging_probe())
    await entered.wait()
    with pytest.raises(CircuitOpen):
        await succeed(breaker)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await breaker.state() == "half_open"  # no verdict from a cancellation
    await succeed(breaker)  # the next probe, at once instead of after 30 s
    assert await breaker.state() == "closed"


async def test_reset_closes_for_everyone(redis: Redis) -> None:
    breaker = CircuitBreaker(redis, new_name(), open_s=60)
    other_replica = CircuitBreaker(redis, breaker.name, open_s=60)
    await fail(breaker, 5)
    await other_replica.reset()
    assert await breaker.state() == "closed"
    await succeed(breaker)
    assert metric("circuit_breaker_transitions_total", name=breaker.name, to="closed") == 1


# -- shared across OS processes --------------------------------------------------------------


async def test_opened_by_another_process_fails_fast_here(redis: Redis, redis_url: str) -> None:
    name = new_name()
    child = await spawn(FAIL_FIVE_TIMES, redis_url, name, open_s=30)
    assert (await finish(child)).strip() == "open"

    breaker = CircuitBreaker(redis, name, open_s=30)
    ran = False
    started = time.perf_counter()
    with pytest.raises(CircuitOpen) as refused:
        async with breaker.guard():
            ran = True
    assert ran is False
    # One Redis round trip, no call: far below any Cal.com timeout (slack for a loaded CI).
    assert time.perf_counter() - started < 0.5
    assert 25 < refused.value.retry_after_s <= 30


async def test_half_open_lets_one_call_of_two_processes_by_ten_through(
    redis: Redis, redis_url: str
) -> None:
    name = new_name()
    params = {"window_s": 1.0, "open_s": 0.2, "probe_timeout_s": 5.0}
    breaker = CircuitBreaker(redis, name, window_s=1.0, open_s=0.2, probe_timeout_s=5.0)
    children = [await spawn(TEN_CONCURRENT_AFTER_GO, redis_url, name, **params) for _ in range(2)]
    await fail(breaker, 5)
    await asyncio.sleep(0.25)
    assert await breaker.state() == "half_open"

    outputs = await asyncio.gather(*(finish(child, b"go\n") for child in children))
    results = [json.loads(out) for out in outputs]
    assert sum(r["ran"] for r in results) == 1
    assert sum(r["refused"] for r in results) == 19
    assert int(await redis.get(f"calls:{name}") or 0) == 1  # counted by the protected body
    assert await breaker.state() == "closed"


async def test_probe_that_never_reports_frees_the_token_after_probe_timeout(
    redis: Redis, redis_url: str
) -> None:
    name = new_name()
    params = {"open_s": 0.2, "probe_timeout_s": 0.5}
    breaker = CircuitBreaker(redis, name, open_s=0.2, probe_timeout_s=0.5)
    await fail(breaker, 5)
    await asyncio.sleep(0.25)

    child = await spawn(DIE_HOLDING_THE_PROBE, redis_url, name, **params)
    assert (await finish(child)).strip() == "probe taken"
    with pytest.raises(CircuitOpen) as refused:
        await succeed(breaker)
    assert 0 < refused.value.retry_after_s <= 0.5

    await asyncio.sleep(refused.value.retry_after_s + 0.05)
    await succeed(breaker)  # a new probe
    assert await breaker.state() == "closed"


# -- Redis: keys, TTLs, outage ---------------------------------------------------------------


async def test_keys_are_namespaced_and_expire(redis: Redis) -> None:
    breaker = CircuitBreaker(redis, new_name(), window_s=2, open_s=5, probe_timeout_s=7)
    state_key = f"breaker:{{{breaker.name}}}:state"
    failures_key = f"breaker:{{{breaker.name}}}:failures"

    await fail(breaker)
    assert await redis.keys(f"breaker:{{{breaker.name}}}:*") == [failures_key.encode()]
    assert 1500 < await redis.pttl(failures_key) <= 2000

    await fail(breaker, 4)
    assert await redis.keys(f"breaker:{{{breaker.name}}}:*") == [state_key.encode()]
    assert (5 + 7 + 3600) * 1000 - 500 < await redis.pttl(state_key) <= (5 + 7 + 3600) * 1000


async def test_redis_unreachable_lets_the_call_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.2, socket_connect_timeout=0.2
    )
    breaker = CircuitBreaker(dead, f"unreachable:{uuid.uuid4().hex}")
    calls = 0
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="shared.redis.circuit_breaker"):
        for _ in range(6):
            async with breaker.guard():
                calls += 1
        with pytest.raises(Boom):
            async with breaker.guard():
                calls += 1
                raise Boom
        state = await breaker.state()
    await dead.aclose()

    assert calls == 7
    assert state == "closed"
    assert time.perf_counter() - started < 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # throttled: one per breaker per interval
    assert "fail-open" in warnings[0].getMessage()


async def test_metrics_follow_the_transitions(redis: Redis) -> None:
    breaker = CircuitBreaker(redis, new_name(), open_s=0.2)
    name = breaker.name

    await fail(breaker, 5)
    assert metric("circuit_breaker_state", name=name) == 2
    assert metric("circuit_breaker_transitions_total", name=name, to="open") == 1

    await asyncio.sleep(0.25)
    assert await breaker.state() == "half_open"
    assert metric("circuit_breaker_state", name=name) == 1

    await succeed(breaker)
    assert metric("circuit_breaker_state", name=name) == 0
    assert metric("circuit_breaker_transitions_total", name=name, to="half_open") == 1
    assert metric("circuit_breaker_transitions_total", name=name, to="closed") == 1


def test_rejects_nonsense_parameters() -> None:
    redis = Redis()
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(redis, "x", failure_threshold=0)
    with pytest.raises(ValueError, match="window_s"):
        CircuitBreaker(redis, "x", window_s=0)
    with pytest.raises(ValueError, match="probe_timeout_s"):
        CircuitBreaker(redis, "x", probe_timeout_s=-1)
