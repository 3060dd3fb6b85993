"""Retell request signatures (`X-Retell-Signature: v=<ms>,d=<hex hmac>`), as retell-sdk does it.

The HMAC-SHA256 key is the Retell API key; the message is the raw body followed by the
timestamp digits. Requests more than 5 minutes (300,000 ms) off our clock are refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time

HEADER = "X-Retell-Signature"
TOLERANCE_MS = 300_000
# Milliseconds since 1970 have 13 digits; a longer timestamp is never inside the window (and
# int() refuses strings of more than 4300 digits).
_PATTERN = re.compile(r"v=([0-9]{1,18}),d=([0-9a-f]{64})")


def now_ms() -> int:
    return int(time.time() * 1000)


def _digest(raw_body: bytes, api_key: str, timestamp: str) -> str:
    return hmac.new(
        api_key.encode(), raw_body + timestamp.encode("ascii"), hashlib.sha256
    ).hexdigest()


def sign(raw_body: bytes, api_key: str, timestamp_ms: int) -> str:
    """The header value Retell would send (for tests and fakes)."""
    ts = str(timestamp_ms)
    return f"v={ts},d={_digest(raw_body, api_key, ts)}"


def parse(header: str) -> tuple[int, str] | None:
    """The header's timestamp (ms) and digest, or None when it is not Retell's shape."""
    match = _PATTERN.fullmatch(header)
    return None if match is None else (int(match.group(1)), match.group(2))


def fresh(timestamp_ms: int, *, current_ms: int | None = None) -> bool:
    """Whether a signature's timestamp lies within the 5-minute window."""
    current = now_ms() if current_ms is None else current_ms
    return abs(current - timestamp_ms) <= TOLERANCE_MS


def verify(
    raw_body: bytes, api_key: str, header: str | None, *, current_ms: int | None = None
) -> bool:
    """True when `header` signs `raw_body` with `api_key` within the 5-minute window."""
    if not header or not api_key:
        return False
    found = parse(header)
    if found is None or not fresh(found[0], current_ms=current_ms):
        return False
    ts, digest = found
    return hmac.compare_digest(_digest(raw_body, api_key, str(ts)), digest)
