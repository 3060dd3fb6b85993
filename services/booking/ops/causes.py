"""Why an integration fails, in words an owner can act on (pure: no I/O).

Every failure signal of the last hours (a Cal.com call that did not answer 2xx, an
appointment whose sync was given up, a booking attempt that ended in an error, a message
that could not be sent) is classified into one cause; the ops page shows one row per cause
with its count, first and last occurrence, one example and the fix (`i18n`: `cause.<key>`
and `fix.<key>`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

# The causes in the order the page lists equal counts (most actionable first).
CAUSES = (
    "calcom_auth",
    "calcom_unreachable",
    "calcom_rate_limited",
    "calcom_rejected",
    "smtp_unreachable",
    "smtp_rejected",
    "sms_gateway_failed",
    "whatsapp_gateway_failed",
    "retell_signature",
    "policy_unreachable",
    "database_error",
    "booking_error",
)
SOURCES = ("calcom", "sync", "booking", "email", "sms", "whatsapp", "retell")

_ANSWERED = re.compile(r"answered (\d{3})")
_UNREACHABLE = (
    "timeout",
    "timed out",
    "connect",
    "unreachable",
    "circuitopen",
    "paused",
    "refused the connection",
    "network",
)
_SMTP_REJECTED = ("smtp refused", "relay cannot deliver", "invalid e-mail", "not accepted")


@dataclass(frozen=True)
class Signal:
    """One failure as a source recorded it: where, the HTTP status if any, its text, when."""

    source: str  # one of SOURCES
    at: datetime
    status: int | None = None
    text: str | None = None
    code: str | None = None  # a booking failure's error code


@dataclass(frozen=True)
class CauseGroup:
    key: str
    count: int
    first_seen: datetime
    last_seen: datetime
    example: str


def _status(signal: Signal) -> int | None:
    if signal.status is not None:
        return signal.status
    found = _ANSWERED.search(signal.text or "")
    return int(found.group(1)) if found else None


def _calcom(status: int | None, text: str) -> str:
    if status in (401, 403) or "unauthorized" in text or "forbidden" in text:
        return "calcom_auth"
    if status == 429 or "rate limit" in text:
        return "calcom_rate_limited"
    if (status is not None and status >= 500) or any(word in text for word in _UNREACHABLE):
        return "calcom_unreachable"
    if status is None and "rejected" not in text:
        return "calcom_unreachable"  # no answer at all
    return "calcom_rejected"


def classify(signal: Signal) -> str:
    """The cause key (one of CAUSES) of one failure signal."""
    text = (signal.text or "").lower()
    status = _status(signal)
    if signal.source in ("calcom", "sync"):
        return _calcom(status, text)
    if signal.source == "email":
        return "smtp_rejected" if any(w in text for w in _SMTP_REJECTED) else "smtp_unreachable"
    if signal.source == "sms":
        return "sms_gateway_failed"
    if signal.source == "whatsapp":
        return "whatsapp_gateway_failed"
    if signal.source == "retell":
        return "retell_signature"
    code = (signal.code or "").lower()
    if "cal.com" in text or "calcom" in code or "calcom" in text:
        return _calcom(status, text)
    if "policy" in code:
        return "policy_unreachable"
    if "database" in code:
        return "database_error"
    return "booking_error"


def group(signals: Iterable[Signal]) -> list[CauseGroup]:
    """One group per cause: count, first and last seen, the newest signal's text as example;
    the most frequent cause first (ties in the order of CAUSES)."""
    found: dict[str, list[Signal]] = {}
    for signal in signals:
        found.setdefault(classify(signal), []).append(signal)
    groups = []
    for key, members in found.items():
        newest = max(members, key=lambda s: s.at)
        groups.append(
            CauseGroup(
                key=key,
                count=len(members),
                first_seen=min(s.at for s in members),
                last_seen=newest.at,
                example=(newest.text or (f"HTTP {newest.status}" if newest.status else ""))[:200],
            )
        )
    groups.sort(key=lambda g: (-g.count, CAUSES.index(g.key)))
    return groups
