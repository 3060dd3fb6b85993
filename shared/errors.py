"""One error hierarchy: every domain error carries its HTTP status and a stable `code`."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """Base of all domain errors; rendered as application/problem+json by `shared.web.problems`."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.title
        self.extra = extra
        super().__init__(self.detail)


class InvalidInput(AppError):
    status, code, title = 422, "validation_error", "Invalid input"

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        if field is not None:
            extra["field"] = field
            extra.setdefault("errors", [{"field": field, "message": detail}])
        super().__init__(detail, **extra)


class OutboundUrlRefused(InvalidInput):
    """A tenant-settable URL (Cal.com base_url) that outbound calls may not use."""

    status, code, title = 422, "outbound_url_refused", "Outbound URL refused"


class FunctionNameMismatch(AppError):
    """The Retell function in the path is not the one the signed body names."""

    status, code, title = 400, "function_name_mismatch", "Function name mismatch"


class PlatformKeyRequired(AppError):
    """Only a platform key may attach phone numbers and Retell agents to a company."""

    status, code, title = 403, "platform_key_required", "Platform key required"


class BadRequest(AppError):
    status, code, title = 400, "bad_request", "Bad request"


class Unauthorized(AppError):
    status, code, title = 401, "unauthorized", "Unauthorized"


class Forbidden(AppError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(AppError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(AppError):
    status, code, title = 409, "conflict", "Conflict"


class PayloadTooLarge(AppError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class RateLimited(AppError):
    status, code, title = 429, "rate_limited", "Too many requests"


class ServiceUnavailable(AppError):
    status, code, title = 503, "service_unavailable", "Service unavailable"


class TenantNotSet(RuntimeError):
    """A tenant-owned table was queried on a session bound to no tenant (a programming error)."""


class IdempotencyKeyReused(AppError):
    status, code, title = 422, "idempotency_key_reused", "Idempotency key reused"


class SlotTaken(AppError):
    status, code, title = 409, "slot_taken", "Slot taken"
    slots: list[Any] = []  # the alternatives as domain objects (the agent words them)


class PolicyViolation(AppError):
    status, code, title = 409, "policy_violation", "Policy violation"


class FeeRequired(AppError):
    """The change would cost a fee the caller has not accepted (`fee`, `currency` in extra)."""

    status, code, title = 409, "fee_required", "Fee required"


class AgentAnswer(Exception):
    """End the request with this JSON answer; raised, so the transaction rolls back."""

    headers: dict[str, str] = {}

    def __init__(self, status: int, body: dict[str, object]) -> None:
        self.status = status
        self.body = body
        super().__init__(f"answer {status}")


class Replay(AgentAnswer):
    """Answer with a stored response (idempotent replay) instead of running the request."""

    headers = {"Idempotent-Replayed": "true"}


# --- the database out of reach (issue 14, docs/adr/0019-database-unavailable.md) ---------------

RETRY_AFTER_S = 2  # what a refusal asks: a restarted MariaDB is back within seconds


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be reached now: 503 with Retry-After, never a 500.

    The request's transaction did not commit, so sending it again is safe; a connection lost
    during COMMIT itself is ambiguous, and a retry with the same Idempotency-Key (or Retell
    call) is then answered from what was stored."""

    status, code, title = 503, "database_unavailable", "Database unavailable"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        extra.setdefault("headers", {"Retry-After": str(RETRY_AFTER_S)})
        super().__init__(
            detail or "The database is unavailable right now; try again in a few seconds.",
            **extra,
        )


class DatabaseTimeout(TimeoutError):
    """No connection, or no answer, from the database within our own deadline (the connect
    timeout, the raw pool's statement deadline). A TimeoutError, so that callers catching
    timeouts still do; `database_unavailable` tells it from other timeouts."""
