"""Booking attempts that failed with an error, kept for the operators' failed-booking view.

A refusal (slot taken, invalid input, policy says no) is a normal answer; a failure is an
attempt the system could not complete: a 5xx domain error (policy or Cal.com unavailable), a
database error, any unexpected exception. The attempt's transaction is rolled back, so the
failure is written afterwards, in a transaction of its own.

Routes take `BookingAttempt` as their FIRST dependency: FastAPI leaves dependencies in reverse
order, so the request's session has already rolled back (and, on SQLite, released the write
lock) when the attempt sees the error. Success costs nothing: no statement, no round trip.

An attempt refused because the database is unavailable cannot be written there: it is left
as a metric, a log line and a count in Redis instead (`ops_overview.note_refused_booking`,
docs/adr/0019), also when authentication itself could not reach the database.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import anyio
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException

from services.booking.ops.overview import note_refused_booking
from shared.db.engine import Database
from shared.db.errors import database_unavailable
from shared.db.types import utcnow
from shared.errors import AgentAnswer, AppError
from shared.models import BookingFailure
from shared.observability.logging import correlation_id_var, mask
from shared.web.auth import cached_principal

log = logging.getLogger(__name__)

# Recording happens on the error path only, but must not hold the error answer for long.
RECORD_BUDGET_S = 2.0
MAX_MESSAGE = 2000


@dataclass(frozen=True)
class Failure:
    code: str
    message: str
    http_status: int


def failure_of(error: BaseException) -> Failure | None:
    """The failure `error` stands for, or None when it is a refusal (a normal answer).

    An agent answer (HTTP 200, spoken) is a failure when its cause is a 5xx domain error: the
    caller hears "please call back" because something was down, not because of the request.
    """
    if isinstance(error, AgentAnswer):
        cause = error.__cause__
        return failure_of(cause) if isinstance(cause, AppError) else None
    if isinstance(error, AppError):
        if error.status < 500:
            return None
        return Failure(error.code, _bounded(error.detail), error.status)
    if isinstance(error, HTTPException):
        if error.status_code < 500:
            return None
        return Failure("http_error", _bounded(str(error.detail)), error.status_code)
    if isinstance(error, RequestValidationError):
        return None
    if isinstance(error, SQLAlchemyError):
        # The driver's message only: the statement and its parameters may hold personal data.
        original = getattr(error, "orig", None)
        text = str(original) if original is not None else str(error).split("\n", 1)[0]
        return Failure("database_error", _bounded(f"{type(error).__name__}: {text}"), 500)
    if isinstance(error, Exception):
        return Failure("internal_error", _bounded(f"{type(error).__name__}: {error}"), 500)
    return None  # cancellation and the like say nothing about the booking


def _bounded(text: str) -> str:
    return mask(text)[:MAX_MESSAGE]


@dataclass
class BookingAttempt:
    """What a route knows about the booking it attempts; armed once it is a booking."""

    source: str
    armed: bool = False
    call_id: str | None = None
    service_id: str | None = None
    staff_id: str | None = None
    start: datetime | None = None

    def arm(
        self,
        *,
        call_id: str | None = None,
        service_id: str | None = None,
        staff_id: str | None = None,
        start: datetime | None = None,
    ) -> None:
        """From here on an error of this request is a failed booking."""
        self.armed = True
        self.call_id = call_id
        self.service_id = service_id
        self.staff_id = staff_id
        self.start = start


async def record_failure(
    db: Database,
    *,
    company_id: str,
    attempt: BookingAttempt,
    failure: Failure,
    correlation_id: str | None,
    now: datetime | None = None,
) -> bool:
    """Write one `booking_failures` row in its own transaction; never raises (logs instead)."""
    row = BookingFailure(
        company_id=company_id,
        correlation_id=correlation_id[:128] if correlation_id else None,
        call_id=attempt.call_id[:100] if attempt.call_id else None,
        source=attempt.source,
        error_code=failure.code[:64],
        error_message=failure.message,
        service_id=attempt.service_id[:36] if attempt.service_id else None,
        staff_id=attempt.staff_id[:36] if attempt.staff_id else None,
        starts_at=attempt.start,
        http_status=failure.http_status,
        created_at=now or utcnow(),
    )
    try:
        with anyio.fail_after(RECORD_BUDGET_S):
            async with db.transaction(company_id) as session:
                session.add(row)
    except Exception as exc:  # the evidence must never replace the error it describes
        log.warning(
            "booking failure not recorded",
            extra={"error_code": failure.code, "error": f"{type(exc).__name__}: {exc}"},
        )
        return False
    return True


def _correlation_id(request: Request) -> str | None:
    return correlation_id_var.get() or getattr(request.state, "correlation_id", None)


def _books(request: Request, attempt: BookingAttempt) -> bool:
    """The request attempts a booking, armed or not yet (refused at authentication)."""
    return (
        attempt.armed
        or attempt.source == "api"
        or request.path_params.get("name") == "book_appointment"
    )


def _company(request: Request, attempt: BookingAttempt) -> str | None:
    """The attempt's company: authenticated, or (a session that failed to open before the
    key was checked: SQLite locked) the API key's from the in-process key cache."""
    company_id: str | None = getattr(request.state, "company_id", None)
    if company_id is None and attempt.source == "api":
        settings = request.app.state.settings
        principal = cached_principal(request.headers, settings.auth_cache_ttl_s, "service")
        company_id = principal.company_id if principal is not None else None
    return company_id


async def _note_refused(request: Request, attempt: BookingAttempt) -> None:
    await note_refused_booking(
        getattr(request.app.state, "redis", None),
        source=attempt.source,
        company_id=_company(request, attempt),
        now=utcnow(),
        details={
            "call_id": attempt.call_id,
            "service_id": attempt.service_id,
            "staff_id": attempt.staff_id,
            "start": attempt.start.isoformat() if attempt.start else None,
        },
    )


def _recorder(source: str) -> object:
    async def watch(request: Request) -> AsyncIterator[BookingAttempt]:
        attempt = BookingAttempt(source)
        try:
            yield attempt
        except BaseException as error:
            if database_unavailable(error) is not None and _books(request, attempt):
                await _note_refused(request, attempt)  # the database cannot take the row
                raise
            failure = failure_of(error) if attempt.armed else None
            company_id = getattr(request.state, "company_id", None)
            if failure is not None and company_id:
                log.warning(
                    "booking failed",
                    extra={"error_code": failure.code, "http_status": failure.http_status},
                )
                await record_failure(
                    request.app.state.db,
                    company_id=company_id,
                    attempt=attempt,
                    failure=failure,
                    correlation_id=_correlation_id(request),
                )
            raise

    return Depends(watch, scope="function")


ApiBookingAttempt = Annotated[BookingAttempt, _recorder("api")]
AgentBookingAttempt = Annotated[BookingAttempt, _recorder("agent")]
