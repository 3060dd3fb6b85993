"""Rate limits shared by all replicas: a sliding-window log in Redis, checked by one Lua script.

Each bucket is a sorted set `rl:<bucket>` of the hits accepted in the last `period_s`, scored
by Redis server time in microseconds. The script drops expired hits, counts, and records the
new hit only when it is allowed, so refused calls do not extend a lock-out. Redis' own clock
(TIME inside the script) keeps replicas with skewed clocks in agreement; the key's PEXPIRE
makes an idle bucket disappear by itself. Memory per bucket is bounded by `limit` entries.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.errors import RateLimited
from shared.redis.scripts import ScriptCall, run_pipelined

log = logging.getLogger(__name__)

DECISIONS = Counter(
    "rate_limit_decisions_total",
    "Rate-limit checks by outcome (allowed, refused, fail_open).",
    ["outcome"],
)

# KEYS[1] bucket; ARGV[1] limit; ARGV[2] period (µs); ARGV[3] unique member for this hit.
# Returns {allowed 0/1, remaining, retry_after µs}. Lua replies are integers, hence µs.
_SLIDING_WINDOW_LOG = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(period / 1000))
  return {1, limit - count - 1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, 0, math.max(1, tonumber(oldest[2]) + period - now)}
"""

# A Redis outage fails every check; one warning per interval is enough to see it.
_WARN_INTERVAL_S = 10.0


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after_s: float = 0.0
    degraded: bool = False  # allowed without asking Redis (fail-open)

    @property
    def retry_after_header(self) -> int:
        """Whole seconds for the Retry-After header: rounded up, at least 1 when refused."""
        return 0 if self.allowed else max(1, math.ceil(self.retry_after_s))


class RateLimiter:
    """Sliding-window-log limiter; one atomic round trip to Redis per `hit`."""

    def __init__(
        self,
        redis: Redis,
        prefix: str = "rl",
        *,
        fail_open: bool = True,
        timeout_s: float | None = None,
    ) -> None:
        """`fail_open`: on Redis errors allow (and warn) instead of raising.

        `timeout_s` bounds one check on top of the client's socket timeouts (None: theirs only).
        """
        self.redis = redis
        self.prefix = prefix
        self.fail_open = fail_open
        self.timeout_s = timeout_s
        self._script: Any = redis.register_script(_SLIDING_WINDOW_LOG)
        self._last_warning = -math.inf

    def key(self, bucket: str) -> str:
        return f"{self.prefix}:{bucket}"

    async def hit(
        self, key: str, limit: int, period_s: float, member: str | None = None
    ) -> Decision:
        """Count one hit on `key`: allowed while fewer than `limit` hits in the last `period_s`.
        `member` names the hit, so that `forgive` can take it back."""
        call = self._call(key, limit, period_s, member)
        try:
            async with asyncio.timeout(self.timeout_s):  # None: no extra bound
                reply = await call.run()
        except (RedisError, OSError) as exc:  # OSError covers TimeoutError and socket errors
            return self._failed(key, limit, exc)
        return self._decision(reply)

    async def hit_with(
        self, key: str, limit: int, period_s: float, other: ScriptCall
    ) -> tuple[Decision, Any]:
        """`hit` and one more script call in one round trip (a pipeline): the decision and
        the other call's reply. When Redis fails, the decision is `hit`'s (fail-open or
        raise) and the other reply is the exception, for its owner to treat as `run` would."""
        call = self._call(key, limit, period_s)
        try:
            async with asyncio.timeout(self.timeout_s):
                mine, theirs = await run_pipelined(self.redis, (call, other))
        except (RedisError, OSError) as exc:
            return self._failed(key, limit, exc), exc
        if isinstance(mine, (RedisError, OSError)):
            return self._failed(key, limit, mine), theirs
        return self._decision(mine), theirs

    async def forgive(self, key: str, member: str) -> None:
        """Take back the hit `member` on `key` (it no longer counts against the limit)."""
        async with asyncio.timeout(self.timeout_s):
            await self.redis.zrem(self.key(key), member)

    def _call(self, key: str, limit: int, period_s: float, member: str | None = None) -> ScriptCall:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        if not period_s > 0:
            raise ValueError(f"period_s must be > 0, got {period_s}")
        period_us = math.ceil(period_s * 1_000_000)
        hit = member or uuid.uuid4().hex
        return ScriptCall(self._script, [self.key(key)], [limit, period_us, hit])

    def _failed(self, key: str, limit: int, exc: BaseException) -> Decision:
        if not self.fail_open:
            raise exc
        self._warn(key, exc)
        DECISIONS.labels("fail_open").inc()
        return Decision(allowed=True, remaining=limit, degraded=True)

    @staticmethod
    def _decision(reply: Any) -> Decision:
        allowed, remaining, retry_us = (int(v) for v in reply)
        DECISIONS.labels("allowed" if allowed else "refused").inc()
        return Decision(
            allowed=bool(allowed), remaining=remaining, retry_after_s=retry_us / 1_000_000
        )

    def _warn(self, key: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_warning < _WARN_INTERVAL_S:
            log.debug("rate limit check failed open for %s: %r", key, exc)
            return
        self._last_warning = now
        log.warning("rate limiter: Redis unavailable, allowing %s (fail-open): %r", key, exc)


async def enforce(limiter: RateLimiter, key: str, limit: int, period_s: float = 60) -> None:
    """Count a hit on `key`; raise RateLimited (429 with Retry-After) when over `limit`."""
    refuse_unless_allowed(await limiter.hit(key, limit, period_s), limit, period_s)


def refuse_unless_allowed(decision: Decision, limit: int, period_s: float = 60) -> None:
    """Raise RateLimited (429 with Retry-After) for a refused decision."""
    if decision.allowed:
        return
    seconds = decision.retry_after_header
    raise RateLimited(
        f"Rate limit of {limit} per {period_s:g} s exceeded; retry in {seconds} s.",
        headers={"Retry-After": str(seconds)},
        retry_after=seconds,
    )


def api_key_bucket(key_id: str) -> str:
    return f"key:{key_id}"


def caller_bucket(company_id: str, e164: str) -> str:
    """The per-number bucket: the caller ID, or the number given in the args without one."""
    return f"num:{company_id}:{e164}"


@dataclass(frozen=True)
class RateLimits:
    per_key_per_minute: int = 1200
    per_number_per_minute: int = 30

    def __post_init__(self) -> None:
        for name in ("per_key_per_minute", "per_number_per_minute"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")


_ENV = {
    "per_key_per_minute": "RATE_LIMIT_PER_KEY_PER_MINUTE",
    "per_number_per_minute": "RATE_LIMIT_PER_NUMBER_PER_MINUTE",
}


def limits_from_env(environ: Mapping[str, str] | None = None) -> RateLimits:
    """RateLimits from RATE_LIMIT_PER_*_PER_MINUTE (unset or empty: the defaults)."""
    env = os.environ if environ is None else environ
    values: dict[str, int] = {}
    for field, var in _ENV.items():
        raw = env.get(var, "").strip()
        if not raw:
            continue
        try:
            values[field] = int(raw, 10)
        except ValueError:
            raise ValueError(f"{var} must be a positive integer, got {raw!r}") from None
        if values[field] < 1:
            raise ValueError(f"{var} must be a positive integer, got {raw!r}")
    return RateLimits(**values)
