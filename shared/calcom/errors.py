"""Cal.com failures split by what the caller should do: retry later, or give up."""

from __future__ import annotations

from typing import Any

from shared.circuit_breaker import CircuitOpen

__all__ = ["CalcomError", "CalcomRejected", "CalcomTransient", "CircuitOpen"]

_SLOT_TAKEN_MARKERS = ("already has booking", "not available")


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

    def __init__(self, message: str, *, status: int, body: dict[str, Any] | None = None) -> None:
        super().__init__(message, status=status)
        self.status: int = status
        self.body = body

    @property
    def slot_unavailable(self) -> bool:
        """Cal.com answers a taken slot with 400 (not 409) and this message."""
        if self.status != 400:
            return False
        text = self.message.lower()
        return any(marker in text for marker in _SLOT_TAKEN_MARKERS)
