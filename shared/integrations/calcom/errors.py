"""Cal.com failures split by what the caller should do: retry later, or give up.

The message of every error is ours and safe to show a tenant ("Cal.com answered 400 (Bad
Request)", "connection refused"): remote error bodies are never echoed into `sync_error`,
`last_error`, the call log's error or any answer. What Cal.com said is kept on
`CalcomRejected.remote_detail` for the decisions that need it (a taken slot, an already
cancelled booking) and nothing else.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from shared.redis.circuit_breaker import CircuitOpen

__all__ = [
    "CalcomAddressRefused",
    "CalcomError",
    "CalcomRejected",
    "CalcomTransient",
    "CircuitOpen",
    "answered",
    "describe",
]

_SLOT_TAKEN_MARKERS = ("already has booking", "not available")


def answered(status: int) -> str:
    """'Cal.com answered 400 (Bad Request)': the status and its standard phrase, nothing else."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return f"Cal.com answered {status}"
    return f"Cal.com answered {status} ({phrase})"


class CalcomError(Exception):
    """Any Cal.com failure; also raised for a 2xx answer whose shape we cannot read."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class CalcomTransient(CalcomError):
    """Worth retrying: timeout, connection failure, 429 or 5xx. Counts against the breaker."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after_s = retry_after_s


class CalcomRejected(CalcomError):
    """A permanent refusal (any 4xx but 429): retrying the same request cannot succeed."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        body: dict[str, Any] | None = None,
        remote_detail: str = "",
    ) -> None:
        super().__init__(message, status=status)
        self.body = body
        self.remote_detail = remote_detail

    @property
    def slot_unavailable(self) -> bool:
        """Cal.com answers a taken slot with 400 (not 409) and this message."""
        if self.status != 400:
            return False
        text = self.remote_detail.lower()
        return any(marker in text for marker in _SLOT_TAKEN_MARKERS)


class CalcomAddressRefused(CalcomRejected):
    """The outbound guard refused the connection (shared.security.outbound): permanent, no HTTP
    call."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"Cal.com not called: {reason}", status=None)


def describe(exc: BaseException) -> str:
    """A one-line, tenant-safe description of a failure around a Cal.com call.

    Messages of our Cal.com errors are sanitized where they are raised; anything else is
    named by its type only (its text may quote a remote answer or an internal address).
    """
    name = type(exc).__name__
    if isinstance(exc, CircuitOpen):
        return f"{name}: Cal.com paused after repeated failures"
    if isinstance(exc, CalcomError):
        return f"{name}: {exc.message}"
    if isinstance(exc, TimeoutError):
        return f"{name}: timeout"
    return name
