"""Backoff for retrying Cal.com calls: exponential, full jitter, floored by the server's hint."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping


def backoff_delay(
    attempt: int,
    *,
    base_s: float = 1.0,
    cap_s: float = 300.0,
    retry_after_s: float | None = None,
) -> float:
    """Seconds to wait before try `attempt + 1` (attempt counts from 1).

    Full jitter (uniform in [0, min(cap, base * 2**(attempt-1))]) spreads the retries of many
    replicas after an outage; a 429's reset hint is a floor, since earlier tries are wasted.
    """
    exponent = max(attempt, 1) - 1
    ceiling = min(cap_s, base_s * (2.0 ** min(exponent, 62)))
    delay = random.uniform(0.0, ceiling)  # jitter, not security
    if retry_after_s is not None and retry_after_s > delay:
        delay = retry_after_s
    return delay


_EPOCH_MS_FLOOR = 1e12  # values this large are epoch milliseconds
_EPOCH_S_FLOOR = 1e9  # values this large are epoch seconds; smaller ones are a wait in seconds


def retry_after_from_headers(
    headers: Mapping[str, str], *, now_s: float | None = None
) -> float | None:
    """Seconds until Cal.com's exhausted rate-limit window resets, from `X-RateLimit-Reset-*`.

    Cal.com answers 429 without Retry-After, with one Limit/Remaining/Reset triple per
    throttler (`-Default`, ...). The window with Remaining 0 is the one that refused us; if none
    says so, the longest wait is taken. The value is read as seconds to wait, or as an epoch
    (seconds or milliseconds) when it is that large.
    """
    now = time.time() if now_s is None else now_s
    resets: dict[str, float] = {}
    exhausted: set[str] = set()
    for key, raw in headers.items():
        lower = key.lower()
        if lower.startswith("x-ratelimit-reset"):
            value = _number(raw)
            if value is not None:
                resets[lower.removeprefix("x-ratelimit-reset")] = _as_wait(value, now)
        elif lower.startswith("x-ratelimit-remaining") and _number(raw) == 0:
            exhausted.add(lower.removeprefix("x-ratelimit-remaining"))
    if not resets:
        return None
    chosen = [wait for name, wait in resets.items() if name in exhausted] or list(resets.values())
    return max(chosen)


def _number(raw: str) -> float | None:
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _as_wait(value: float, now: float) -> float:
    if value >= _EPOCH_MS_FLOOR:
        return max(value / 1000.0 - now, 0.0)
    if value >= _EPOCH_S_FLOOR:
        return max(value - now, 0.0)
    return value
