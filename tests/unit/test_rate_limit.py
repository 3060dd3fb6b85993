"""Rate limiter against the real Redis: counts, windows, replicas sharing a bucket, fail-open."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from shared.errors import RateLimited
from shared.redis.scripts import ScriptCall, run_pipelined
from shared.web.problems import install_problem_handlers
from shared.web.rate_limit import (
    Decision,
    RateLimiter,
    RateLimits,
    api_key_bucket,
    caller_bucket,
    enforce,
    limits_from_env,
)


def unique_prefix() -> str:
    return f"rl:test:{uuid.uuid4().hex}"


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    redis = Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    yield redis
    await redis.aclose()


@pytest.fixture
async def limiter(client: Redis) -> RateLimiter:
    return RateLimiter(client, prefix=unique_prefix(), fail_open=False)


async def test_thirty_allowed_then_refused(limiter: RateLimiter) -> None:
    decisions = [await limiter.hit("num:c1:+4930123456", 30, 60) for _ in range(31)]

    assert all(d.allowed for d in decisions[:30])
    assert [d.remaining for d in decisions[:30]] == list(range(29, -1, -1))
    refused = decisions[30]
    assert not refused.allowed
    assert refused.remaining == 0
    assert 0 < refused.retry_after_s <= 60
    assert 1 <= refused.retry_after_header <= 60


async def test_refused_hits_do_not_extend_the_window(limiter: RateLimiter) -> None:
    for _ in range(3):
        await limiter.hit("k", 3, 60)
    first = await limiter.hit("k", 3, 60)
    await asyncio.sleep(0.05)
    later = await limiter.hit("k", 3, 60)
    assert not first.allowed and not later.allowed
    assert later.retry_after_s < first.retry_after_s


async def test_allowed_again_after_the_window(limiter: RateLimiter) -> None:
    first = [await limiter.hit("k", 5, 1) for _ in range(5)]
    assert all(d.allowed for d in first)
    refused = await limiter.hit("k", 5, 1)
    assert not refused.allowed
    assert 0 < refused.retry_after_s <= 1
    assert refused.retry_after_header == 1

    await asyncio.sleep(refused.retry_after_s + 0.05)
    assert (await limiter.hit("k", 5, 1)).allowed

    await asyncio.sleep(1.1)
    again = [await limiter.hit("k", 5, 1) for _ in range(5)]
    assert all(d.allowed for d in again)
    assert [d.remaining for d in again] == [4, 3, 2, 1, 0]


async def test_buckets_are_independent(limiter: RateLimiter) -> None:
    assert (await limiter.hit("a", 1, 60)).allowed
    assert not (await limiter.hit("a", 1, 60)).allowed
    assert (await limiter.hit("b", 1, 60)).allowed


async def test_keys_are_prefixed_and_expire_by_themselves(client: Redis) -> None:
    prefix = unique_prefix()
    limiter = RateLimiter(client, prefix=prefix, fail_open=False)
    await limiter.hit(api_key_bucket("k1"), 10, 2.5)

    keys = [k.decode() async for k in client.scan_iter(match=f"{prefix}:*")]
    assert keys == [f"{prefix}:key:k1"]
    assert keys[0].startswith("rl:")
    assert 0 < await client.pttl(keys[0]) <= 2500


async def test_two_replicas_share_one_bucket(redis_url: str) -> None:
    # Two clients = two connection pools, as two replicas would have.
    first = Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=10)
    second = Redis.from_url(redis_url, socket_timeout=10, socket_connect_timeout=10)
    prefix = unique_prefix()
    replicas = [RateLimiter(r, prefix=prefix, fail_open=False) for r in (first, second)]
    try:
        decisions = await asyncio.gather(
            *(replicas[i % 2].hit("shared", 50, 60) for i in range(100))
        )
    finally:
        await first.aclose()
        await second.aclose()

    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == 50
    assert sorted(d.remaining for d in allowed) == list(range(50))
    assert all(d.retry_after_s > 0 for d in decisions if not d.allowed)


async def test_fail_open_allows_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    broken = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    try:
        limiter = RateLimiter(broken, prefix=unique_prefix(), fail_open=True)
        with caplog.at_level(logging.WARNING, logger="shared.web.rate_limit"):
            decision = await limiter.hit("k", 1, 60)
            again = await limiter.hit("k", 1, 60)
    finally:
        await broken.aclose()

    assert decision.allowed and decision.degraded
    assert again.allowed
    warnings = [r for r in caplog.records if r.name == "shared.web.rate_limit"]
    assert len(warnings) == 1  # one warning per interval, not one per request
    assert warnings[0].levelno == logging.WARNING
    assert "fail-open" in warnings[0].getMessage()


async def test_fail_closed_raises() -> None:
    broken = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    try:
        limiter = RateLimiter(broken, prefix=unique_prefix(), fail_open=False)
        with pytest.raises(RedisConnectionError):
            await limiter.hit("k", 1, 60)
    finally:
        await broken.aclose()


async def test_enforce_raises_rate_limited(limiter: RateLimiter) -> None:
    await enforce(limiter, "k", 2)
    await enforce(limiter, "k", 2)
    with pytest.raises(RateLimited) as caught:
        await enforce(limiter, "k", 2)

    error = caught.value
    assert error.status == 429
    assert error.code == "rate_limited"
    seconds = int(error.extra["headers"]["Retry-After"])
    assert 1 <= seconds <= 60
    assert error.extra["retry_after"] == seconds


async def test_enforce_renders_problem_with_retry_after(limiter: RateLimiter) -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/calls/{number}")
    async def call(number: str) -> dict[str, str]:
        await enforce(limiter, caller_bucket("c1", number), 1, period_s=30)
        return {"ok": number}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert (await http.get("/calls/+4930123456")).status_code == 200
        refused = await http.get("/calls/+4930123456")
        assert (await http.get("/calls/+4930999999")).status_code == 200

    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 30
    body = refused.json()
    assert body["code"] == "rate_limited"
    assert body["retry_after"] == int(refused.headers["retry-after"])


@pytest.mark.parametrize(("limit", "period"), [(0, 60), (-1, 60), (5, 0), (5, -1.0)])
async def test_invalid_limits_are_refused(limiter: RateLimiter, limit: int, period: float) -> None:
    with pytest.raises(ValueError):
        await limiter.hit("k", limit, period)


@pytest.mark.parametrize(
    ("seconds", "header"), [(0.000001, 1), (0.5, 1), (1.0, 1), (1.000001, 2), (59.2, 60)]
)
def test_retry_after_header_rounds_up(seconds: float, header: int) -> None:
    decision = Decision(allowed=False, remaining=0, retry_after_s=seconds)
    assert decision.retry_after_header == header
    assert Decision(allowed=True, remaining=3).retry_after_header == 0


def test_buckets() -> None:
    assert api_key_bucket("abc") == "key:abc"
    assert caller_bucket("co_1", "+4930123456") == "num:co_1:+4930123456"


def test_limits_from_env() -> None:
    assert limits_from_env({}) == RateLimits(1200, 30)
    assert limits_from_env(
        {"RATE_LIMIT_PER_KEY_PER_MINUTE": " 600 ", "RATE_LIMIT_PER_NUMBER_PER_MINUTE": ""}
    ) == RateLimits(per_key_per_minute=600, per_number_per_minute=30)
    assert limits_from_env({"RATE_LIMIT_PER_NUMBER_PER_MINUTE": "10"}).per_number_per_minute == 10


@pytest.mark.parametrize("raw", ["0", "-5", "1.5", "lots", "12abc"])
def test_limits_from_env_rejects_bad_values(raw: str) -> None:
    with pytest.raises(ValueError, match="RATE_LIMIT_PER_KEY_PER_MINUTE"):
        limits_from_env({"RATE_LIMIT_PER_KEY_PER_MINUTE": raw})


def test_rate_limits_validate() -> None:
    with pytest.raises(ValueError):
        RateLimits(per_key_per_minute=0)


async def test_hit_with_another_script_in_one_round_trip(
    limiter: RateLimiter, client: Redis
) -> None:
    """The hit and another script call share a pipeline; a script Redis does not know yet
    (NOSCRIPT) is loaded and run again; a refused hit still returns the other reply; an
    error of the other call is its reply, not the hit's."""
    marker = uuid.uuid4().hex  # a script text never loaded before: its first EVALSHA fails
    echo = ScriptCall(client.register_script(f"return ARGV[1] -- {marker}"), [], ["x"])
    answers = [await limiter.hit_with("k", 2, 60, echo) for _ in range(3)]
    assert [(d.allowed, d.remaining, reply) for d, reply in answers] == [
        (True, 1, b"x"),
        (True, 0, b"x"),
        (False, 0, b"x"),
    ]
    assert answers[2][0].retry_after_s > 0
    broken = ScriptCall(client.register_script("return redis.call('INCR')"), [], [])
    decision, reply = await limiter.hit_with("other", 2, 60, broken)
    assert decision.allowed and isinstance(reply, ResponseError)
    replies = await run_pipelined(client, [echo, echo])
    assert replies == [b"x", b"x"]


async def test_hit_with_redis_down_fails_open_and_hands_back_the_error() -> None:
    broken = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    try:
        limiter = RateLimiter(broken, prefix=unique_prefix(), fail_open=True)
        echo = ScriptCall(broken.register_script("return 1"), [], [])
        decision, reply = await limiter.hit_with("k", 1, 60, echo)
        closed = RateLimiter(broken, prefix=unique_prefix(), fail_open=False)
        with pytest.raises(RedisConnectionError):
            await closed.hit_with("k", 1, 60, echo)
    finally:
        await broken.aclose()
    assert decision.allowed and decision.degraded
    assert isinstance(reply, RedisConnectionError)
