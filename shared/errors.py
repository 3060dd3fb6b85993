"""One error hierarchy: every domain error carries its HTTP status and a stable `code`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exc as sa_exc


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
# MySQL/MariaDB error codes that mean "no database now", not "this request is wrong":
# 1040 too many connections, 1053 server shutdown in progress, 1927 connection killed (by a
# shutdown), 2002/2003 cannot connect (socket/TCP), 2006 server has gone away, 2013 lost
# connection during query, 2055 lost connection at a handshake stage, 4031 disconnected by
# the server (MySQL 8: idle).
UNAVAILABLE_MYSQL_CODES = frozenset({1040, 1053, 1927, 2002, 2003, 2006, 2013, 2055, 4031})
SQLITE_BUSY = 5  # "database is locked": the busy timeout passed while another holds the lock


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


def _driver_error(error: BaseException) -> BaseException:
    """The driver's own exception inside SQLAlchemy's wrapper (`orig`), else `error`."""
    original = getattr(error, "orig", None)
    return original if isinstance(original, BaseException) else error


def _mysql_code(error: BaseException) -> int | None:
    """The error code of a MySQL driver error (asyncmy, PyMySQL: args[0]), else None."""
    module = type(error).__module__.split(".", 1)[0]
    if module not in ("asyncmy", "pymysql") or not error.args:
        return None
    code = error.args[0]
    return code if isinstance(code, int) else None


def _is_unavailable(error: BaseException) -> bool:
    if isinstance(error, DatabaseUnavailable | DatabaseTimeout | sa_exc.TimeoutError):
        return True  # sa_exc.TimeoutError: no pooled connection free within pool_timeout
    # By the driver's own code, not SQLAlchemy's `connection_invalidated`, which also covers
    # "commands out of sync" (a bug of ours, which must stay a 500).
    driver = _driver_error(error)
    if driver is not error and isinstance(driver, DatabaseTimeout):
        return True
    code = _mysql_code(driver)
    if code is not None:
        if code in UNAVAILABLE_MYSQL_CODES:
            return True
        # Code 0: the driver's connection was already closed (broken earlier, cut off midway).
        return code == 0 and type(driver).__name__ == "InterfaceError"
    if type(driver).__module__ == "sqlite3" and type(driver).__name__ == "OperationalError":
        errorcode = getattr(driver, "sqlite_errorcode", None)
        if isinstance(errorcode, int):
            return errorcode & 0xFF == SQLITE_BUSY  # extended codes: SQLITE_BUSY_*
        return "database is locked" in str(driver)
    return False


def database_unavailable(error: BaseException) -> DatabaseUnavailable | None:
    """The 503 refusal for `error` when it means the database cannot be reached now
    (connection refused or lost, server gone away or shutting down, no pooled connection
    or no connection within the timeouts, SQLite locked beyond its busy timeout); None for
    every other error (a constraint, a syntax error, a bug), which stays what it is."""
    if isinstance(error, DatabaseUnavailable):
        return error
    return DatabaseUnavailable() if _is_unavailable(error) else None
