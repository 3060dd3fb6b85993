"""Render every error as application/problem+json (RFC 9457) with a stable `code`."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping
from typing import Any

from asyncmy import errors as asyncmy_errors
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import Scope

from shared.db.errors import database_unavailable
from shared.errors import (
    AgentAnswer,
    AppError,
    DatabaseTimeout,
    DatabaseUnavailable,
)
from shared.observability.logging import mask

log = logging.getLogger(__name__)
_DATABASE_ERRORS: tuple[type[Exception], ...] = (
    DatabaseUnavailable,
    SQLAlchemyError,
    DatabaseTimeout,
    asyncmy_errors.Error,
    sqlite3.Error,
)
PROBLEM = "application/problem+json"
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "service_unavailable",
}


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": f"https://errors.appointments.local/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return ProblemResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


class ProblemResponse(JSONResponse):
    """JSON in ASCII: a refusal may quote input that is not valid Unicode (a lone surrogate
    in an unknown key), which JSON can escape but UTF-8 cannot encode."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def app_error_response(exc: AppError) -> JSONResponse:
    """The problem+json answer of a domain error (also used outside FastAPI's handlers)."""
    extra = dict(exc.extra)
    headers = extra.pop("headers", None)
    return problem(exc.status, exc.code, exc.title, exc.detail, headers=headers, **extra)


async def _app_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return app_error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _field_name(err.get("loc", ())), "message": str(err.get("msg", "invalid"))}
        for err in exc.errors()
    ]
    fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
    return problem(
        422,
        "validation_error",
        "Invalid input",
        f"Invalid value for: {fields}",
        field=errors[0]["field"] if errors else None,
        errors=errors,
    )


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return problem(
        exc.status_code, code, code.replace("_", " ").capitalize(), detail, headers=exc.headers
    )


async def _answer(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AgentAnswer)
    return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers or None)


async def _client_gone(request: Request, _exc: Exception) -> JSONResponse:
    """The caller hung up before its body arrived (a timed-out agent, say): nothing was done,
    nobody reads the answer, and it is no server error (no 500, no traceback)."""
    log.info("client disconnected before sending its request", extra={"path": request.url.path})
    return problem(
        400,
        "client_disconnected",
        "Client disconnected",
        "The client disconnected before sending the whole request.",
    )


def describe_database_error(error: BaseException) -> str:
    """The error's class and the driver's first line (never the statement or its values)."""
    original = getattr(error, "orig", None)
    text = str(original if isinstance(original, BaseException) else error).split("\n", 1)[0]
    return mask(f"{type(error).__name__}: {text}")[:300]


def database_refusal(scope: Scope, error: BaseException) -> Response | None:
    """The 503 `database_unavailable` answer (Retry-After) when `error` means the database
    cannot be reached now, logged once; None for any other error, which stays what it is.
    The one place both the exception handler and the lean routes (shared/web/lean.py) use.

    A route whose callers cannot act on a 503 (the phone agent's) may answer otherwise: its
    `database_unavailable_answer(scope)` gives the response (services/booking/agent/api.py).
    """
    refusal = database_unavailable(error)
    if refusal is None:
        return None
    route = scope.get("route")
    answer = getattr(route, "database_unavailable_answer", None)
    response = answer(scope) if answer is not None else None
    if response is None:
        response = app_error_response(refusal)
    log.warning(
        "database unavailable: request refused",
        extra={
            "code": refusal.code,
            "route": getattr(route, "path", None) or "unmatched",
            "method": scope.get("method"),
            "status": response.status_code,
            "error": describe_database_error(error),
        },
    )
    return response


async def _database_error(request: Request, exc: Exception) -> Response:
    response = database_refusal(request.scope, exc)
    if response is None:
        raise exc  # not an outage: on to the 500 handler, as before
    return response


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem(500, "internal_error", "Internal error", "An unexpected error occurred.")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(AgentAnswer, _answer)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    # The database out of reach (docs/adr/0019): 503 database_unavailable; other database
    # errors are re-raised to `_unexpected`. Raw-pool driver errors are asyncmy's own.
    for error_class in _DATABASE_ERRORS:
        app.add_exception_handler(error_class, _database_error)
    app.add_exception_handler(Exception, _unexpected)
