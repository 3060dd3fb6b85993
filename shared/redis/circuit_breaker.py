"""A circuit breaker whose state lives in Redis, so every replica and worker shares it.

Why not purgatory/pybreaker/aiobreaker: they update Redis with GET then SET (racy) or a
blocking client, and let every concurrent caller through when half-open (the stampede of
Polly #216). Here every transition is ONE Lua script, timed by Redis' own clock (TIME), so
replicas with skewed clocks agree and no read-modify-write can interleave.

Keys (the `{name}` braces are a Redis Cluster hash tag: both keys of a breaker share a slot):
- `breaker:{name}:failures`: sorted set of recent failures scored by time (µs); the sliding
  window. PEXPIRE = the window, so it vanishes once every failure in it has aged out.
- `breaker:{name}:state`: hash present only while open or half-open: `open_until` (µs),
  `phase` (open|half_open, so the half-open transition is counted once), `probe` (the token of
  the one call allowed through while half-open) and `probe_until` (when a probe that never
  reported stops holding the token). PEXPIRE = open + probe timeout + an idle hour, so an
  idle breaker disappears (back to closed) instead of leaking.

A Redis failure never breaks the protected call: the breaker fails open and logs a warning.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

State = Literal["closed", "open", "half_open"]
# Lua replies are integers: 0 closed, 1 half-open, 2 open (also the gauge's values).
_STATES: tuple[State, State, State] = ("closed", "half_open", "open")

# Metrics are labelled by the breaker's kind (its name up to the first ':', e.g. "calcom"),
# never by its full name: names carry company ids, which /metrics must not expose (and which
# would make the series unbounded). Which company's breaker is open: /v1/ops/overview.
STATE_GAUGE = Gauge(
    "circuit_breaker_state",
    "Worst state among the breakers of this kind as last seen by this process: 0 closed, "
    "1 half-open, 2 open.",
    ["name"],
)
NOT_CLOSED = Gauge(
    "circuit_breakers_not_closed",
    "Breakers of this kind last seen open or half-open by this process.",
    ["name"],
)
TRANSITIONS = Counter(
    "circuit_breaker_transitions_total",
    "Circuit breaker transitions made by this process, by breaker kind and target state.",
    ["name", "to"],
)
# Per kind: the breakers last seen open or half-open (name -> state code); closed ones leave.
_NOT_CLOSED: dict[str, dict[str, int]] = {}
_MAX_TRACKED = 10_000


def metric_label(name: str) -> str:
    """The label a breaker's metrics carry: its kind, without the per-company part."""
    return name.split(":", 1)[0]


def _observe_state(name: str, code: int) -> None:
    kind = metric_label(name)
    seen = _NOT_CLOSED.setdefault(kind, {})
    if code == 0:
        seen.pop(name, None)
    else:
        if len(seen) >= _MAX_TRACKED and name not in seen:
            seen.clear()
        seen[name] = code
    STATE_GAUGE.labels(kind).set(max(seen.values(), default=0))
    NOT_CLOSED.labels(kind).set(len(seen))


# How long a half-open breaker nobody calls survives after its probe window (then: closed).
_IDLE_TTL_S = 3600.0
# Upper bound on one breaker round trip, on top of the client's socket timeouts: the breaker
# must not make a call much slower than the dependency it protects.
_REDIS_BUDGET_S = 0.5
# During a Redis outage every call fails open; one warning per breaker per interval suffices.
_WARN_INTERVAL_S = 10.0
_last_warning: dict[str, float] = {}

_NOW = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function state_code(open_until)
  if not open_until then return 0 end
  if now < open_until then return 2 end
  return 1
end
"""

# KEYS state; ARGV token, probe timeout µs, state ttl ms.
# Returns {decision (0 refused, 1 allowed, 2 allowed as the probe), state, retry µs, to_half}.
_ACQUIRE = (
    _NOW
    + """
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until'))
if not open_until then return {1, 0, 0, 0} end
if now < open_until then return {0, 2, open_until - now, 0} end
local to_half = 0
if redis.call('HGET', KEYS[1], 'phase') ~= 'half_open' then
  redis.call('HSET', KEYS[1], 'phase', 'half_open')
  to_half = 1
end
local probe_until = tonumber(redis.call('HGET', KEYS[1], 'probe_until'))
if probe_until and now < probe_until then return {0, 1, probe_until - now, to_half} end
redis.call('HSET', KEYS[1], 'probe', ARGV[1], 'probe_until', now + tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {2, 1, 0, to_half}
"""
)

# KEYS state, failures; ARGV token ('' unless the probe), unique member, threshold,
# window µs, open µs, state ttl ms, window ttl ms. Returns {state, opened 0/1}.
_FAILURE = (
    _NOW
    + """
local function open()
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[1], 'open_until', now + tonumber(ARGV[5]), 'phase', 'open')
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  return {2, 1}
end
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until'))
if open_until then
  if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'probe') == ARGV[1] then return open() end
  return {state_code(open_until), 0}
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[4]))
redis.call('ZADD', KEYS[2], now, ARGV[2])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return open() end
redis.call('PEXPIRE', KEYS[2], ARGV[7])
return {0, 0}
"""
)

# KEYS state, failures; ARGV probe token. Returns {state, closed 0/1}.
_PROBE_SUCCESS = (
    _NOW
    + """
if redis.call('HGET', KEYS[1], 'probe') == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return {0, 1}
end
return {state_code(tonumber(redis.call('HGET', KEYS[1], 'open_until'))), 0}
"""
)

# KEYS state; ARGV probe token: give the token back without a verdict (the probe was cancelled).
_RELEASE = """
if redis.call('HGET', KEYS[1], 'probe') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'probe', 'probe_until')
end
return 0
"""

_STATE = (
    _NOW
    + """
return state_code(tonumber(redis.call('HGET', KEYS[1], 'open_until')))
"""
)

# KEYS state, failures. Returns 1 when the breaker was open or half-open.
_RESET = """
local existed = redis.call('EXISTS', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
return existed
"""


class CircuitOpen(Exception):
    """The breaker is open: the call was not made."""

    name: str
    retry_after_s: float  # until the next half-open probe may run

    def __init__(self, name: str, retry_after_s: float) -> None:
        self.name = name
        self.retry_after_s = retry_after_s
        super().__init__(f"circuit {name!r} is open; next probe in {retry_after_s:.2f} s")

    def __reduce__(self) -> tuple[type[CircuitOpen], tuple[str, float]]:
        # Picklable with its fields (ARQ pickles a job's exception).
        return (CircuitOpen, (self.name, self.retry_after_s))


def _always_failure(_exc: BaseException) -> bool:
    return True


class CircuitBreaker:
    """Opens after `failure_threshold` failures within `window_s`; one probe after `open_s`."""

    def __init__(
        self,
        redis: Redis,
        name: str,
        *,
        failure_threshold: int = 5,
        window_s: float = 60.0,
        open_s: float = 30.0,
        probe_timeout_s: float = 30.0,
        redis_budget_s: float = _REDIS_BUDGET_S,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        for label, value in (("window_s", window_s), ("open_s", open_s)):
            if not value > 0:
                raise ValueError(f"{label} must be > 0, got {value}")
        if not probe_timeout_s > 0:
            raise ValueError(f"probe_timeout_s must be > 0, got {probe_timeout_s}")
        self.redis = redis
        self.name = name
        self.failure_threshold = failure_threshold
        self.redis_budget_s = redis_budget_s
        self._keys = [f"breaker:{{{name}}}:state", f"breaker:{{{name}}}:failures"]
        self._window_us = math.ceil(window_s * 1_000_000)
        self._open_us = math.ceil(open_s * 1_000_000)
        self._probe_us = math.ceil(probe_timeout_s * 1_000_000)
        self._window_ttl_ms = math.ceil(window_s * 1000)
        self._state_ttl_ms = math.ceil((open_s + probe_timeout_s + _IDLE_TTL_S) * 1000)
        self._acquire_script: Any = redis.register_script(_ACQUIRE)
        self._failure_script: Any = redis.register_script(_FAILURE)
        self._success_script: Any = redis.register_script(_PROBE_SUCCESS)
        self._release_script: Any = redis.register_script(_RELEASE)
        self._state_script: Any = redis.register_script(_STATE)
        self._reset_script: Any = redis.register_script(_RESET)

    @asynccontextmanager
    async def guard(
        self, is_failure: Callable[[BaseException], bool] = _always_failure
    ) -> AsyncIterator[None]:
        """Run the body unless open (then CircuitOpen); record how it ended; re-raise.

        An exception for which `is_failure` is false counts as a success. A cancellation
        (or any BaseException that is not an Exception) says nothing about the dependency:
        no verdict, but a probe gives its token back so the next call can probe at once.
        """
        ticket = await self._acquire()
        try:
            yield
        except Exception as exc:
            if is_failure(exc):
                await self._record_failure(ticket)
            else:
                await self._record_success(ticket)
            raise
        except BaseException:
            await self._release(ticket)
            raise
        else:
            await self._record_success(ticket)

    async def state(self) -> State:
        """The shared state now (Redis unreachable: "closed", which is how calls behave)."""
        try:
            code = await self._run(self._state_script, self._keys[:1], [])
        except (RedisError, OSError) as exc:
            self._warn(exc)
            return "closed"
        return self._observe(int(code))

    async def reset(self) -> None:
        """Force closed for every replica (counters cleared). Redis errors propagate."""
        existed = await self._run(self._reset_script, self._keys, [])
        self._observe(0, transitioned=bool(existed))

    # -- transitions: one script each --------------------------------------------------

    async def _acquire(self) -> _Ticket:
        token = uuid.uuid4().hex
        try:
            reply = await self._run(
                self._acquire_script, self._keys[:1], [token, self._probe_us, self._state_ttl_ms]
            )
        except (RedisError, OSError) as exc:
            self._warn(exc)
            return _Ticket(probe=None, redis_ok=False)
        decision, code, retry_us, to_half = (int(v) for v in reply)
        self._observe(code, transitioned=bool(to_half))
        if decision == 0:
            raise CircuitOpen(self.name, retry_us / 1_000_000)
        return _Ticket(probe=token if decision == 2 else None, redis_ok=True)

    async def _record_failure(self, ticket: _Ticket) -> None:
        if not ticket.redis_ok:
            return  # Redis just failed: do not add a second timeout to a failing call
        args = [
            ticket.probe or "",
            uuid.uuid4().hex,
            self.failure_threshold,
            self._window_us,
            self._open_us,
            self._state_ttl_ms,
            self._window_ttl_ms,
        ]
        try:
            reply = await self._run(self._failure_script, self._keys, args)
        except (RedisError, OSError) as exc:
            self._warn(exc)
            return
        code, opened = (int(v) for v in reply)
        self._observe(code, transitioned=bool(opened))

    async def _record_success(self, ticket: _Ticket) -> None:
        if ticket.probe is None:
            return  # a success while closed changes nothing: no round trip
        try:
            reply = await self._run(self._success_script, self._keys, [ticket.probe])
        except (RedisError, OSError) as exc:
            self._warn(exc)
            return
        code, closed = (int(v) for v in reply)
        self._observe(code, transitioned=bool(closed))

    async def _release(self, ticket: _Ticket) -> None:
        if ticket.probe is None:
            return
        try:
            await self._run(self._release_script, self._keys[:1], [ticket.probe])
        except (RedisError, OSError) as exc:
            self._warn(exc)

    async def _run(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        async with asyncio.timeout(self.redis_budget_s):
            return await script(keys=keys, args=args, client=self.redis)

    def _observe(self, code: int, *, transitioned: bool = False) -> State:
        state = _STATES[code]
        _observe_state(self.name, code)
        if transitioned:
            TRANSITIONS.labels(metric_label(self.name), state).inc()
            log.info("circuit breaker %s -> %s", self.name, state)
        return state

    def _warn(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - _last_warning.get(self.name, -math.inf) < _WARN_INTERVAL_S:
            log.debug("circuit breaker %s failed open: %r", self.name, exc)
            return
        if len(_last_warning) > 10_000:  # names carry company ids: keep the map bounded
            _last_warning.clear()
        _last_warning[self.name] = now
        log.warning(
            "circuit breaker %s: Redis unavailable, letting the call through (fail-open): %r",
            self.name,
            exc,
        )


class _Ticket:
    """What `_acquire` granted: the probe token (None for an ordinary call)."""

    __slots__ = ("probe", "redis_ok")

    def __init__(self, probe: str | None, redis_ok: bool) -> None:
        self.probe = probe
        self.redis_ok = redis_ok
