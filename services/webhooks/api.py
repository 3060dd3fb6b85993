"""Webhooks service routes: the two ingestion endpoints and the operators' event API.

The ingestion routes take the raw request (no body model: the signature covers the exact
bytes) and run their own short transactions (`services/webhooks/ingest.py`), not the
request-wide session. The operator routes use the usual API-key auth; see
`services/webhooks/replay.py` for who sees which events.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials

from services.webhooks import event_metrics, ingest, replay
from services.webhooks.replay import Scope
from services.webhooks.schemas import Accepted, EventDetail, EventList, Repeated
from shared.api_keys import verify_key
from shared.auth import authenticate, bearer, enforce_key_limit
from shared.db.tenancy import SYSTEM, bind_tenant
from shared.deps import Session
from shared.errors import Forbidden

_RAW_JSON_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The sender's JSON, verified byte for byte (at most 1 MiB).",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


def _problem(description: str) -> dict[str, Any]:
    return {"description": f"{description} (problem+json)"}


_INGEST_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"model": Repeated, "description": "A repeated delivery: nothing is done again"},
    202: {"model": Accepted, "description": "Stored; processed asynchronously"},
    400: _problem("Not JSON, or not the source's schema; `errors` lists each field"),
    401: _problem("Missing or invalid signature, or unknown company; nothing stored"),
    413: _problem("Body over 1 MiB"),
}

ingestion = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def _answer(receipt: ingest.Receipt) -> JSONResponse:
    return JSONResponse(receipt.body(), status_code=receipt.http_status)


async def calcom_answer(
    state: Any, company_id: str, raw: bytes, signature: str | None
) -> JSONResponse:
    """Ingest one Cal.com delivery and answer it (also the lean route's, lean_routes.py)."""
    with event_metrics.refusals_counted("calcom"):
        receipt = await ingest.ingest_calcom(
            state.db, state.arq, state.calcom_secrets, company_id, raw, signature
        )
    event_metrics.count_delivery("calcom", receipt.created)
    return _answer(receipt)


async def retell_answer(state: Any, raw: bytes, signature: str | None) -> JSONResponse:
    """Ingest one Retell call event and answer it (also the lean route's, lean_routes.py)."""
    with event_metrics.refusals_counted("retell"):
        receipt = await ingest.ingest_retell(
            state.db, state.arq, state.settings.retell_api_key, raw, signature
        )
    event_metrics.count_delivery("retell", receipt.created)
    return _answer(receipt)


async def _body(request: Request, source: str) -> bytes:
    with event_metrics.refusals_counted(source):
        return await ingest.read_body(request)


@ingestion.post(
    "/calcom/{company_id}",
    summary="Cal.com webhook of one company",
    status_code=202,
    response_model=None,
    responses=_INGEST_ANSWERS,
    openapi_extra=_RAW_JSON_BODY,
)
async def calcom_webhook(
    request: Request,
    company_id: str,
    signature: Annotated[str | None, Header(alias="X-Cal-Signature-256")] = None,
) -> JSONResponse:
    """Signed with the company's webhook secret (hex HMAC-SHA256 of the raw body)."""
    raw = await _body(request, "calcom")
    return await calcom_answer(request.app.state, company_id, raw, signature)


@ingestion.post(
    "/retell",
    summary="Retell call event (call_started, call_ended, call_analyzed, ...)",
    status_code=202,
    response_model=None,
    responses=_INGEST_ANSWERS,
    openapi_extra=_RAW_JSON_BODY,
)
async def retell_webhook(
    request: Request,
    signature: Annotated[str | None, Header(alias="X-Retell-Signature")] = None,
) -> JSONResponse:
    """Signed like every Retell request (retell-sdk scheme, 5-minute window)."""
    raw = await _body(request, "retell")
    return await retell_answer(request.app.state, raw, signature)


# --- operators ---------------------------------------------------------------------------------


def _may_operate(scopes: tuple[str, ...] | frozenset[str]) -> bool:
    return "operator" in scopes or "admin" in scopes


async def event_scope(
    request: Request,
    session: Session,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Scope:
    """The caller's view of the events: its company's, or (platform key without
    X-Company-ID) the unattributed ones. Needs the operator (or admin) scope."""
    if (
        credentials is not None
        and credentials.scheme.lower() == "bearer"
        and not request.headers.get("x-company-id")
    ):
        ttl = request.app.state.settings.auth_cache_ttl_s
        key = await verify_key(session, credentials.credentials, ttl)
        if key is not None and key.company_id is None:
            await enforce_key_limit(request.app.state, key.id)
            if not _may_operate(key.scopes):
                raise Forbidden("This API key lacks the 'operator' scope.")
            # Rows of no company: the explicit system scope, narrowed by the Scope's condition.
            bind_tenant(session, SYSTEM)
            return replay.UNATTRIBUTED
    principal = await authenticate(request, session, credentials)
    if not _may_operate(principal.scopes):
        raise Forbidden("This API key lacks the 'operator' scope.")
    return Scope(principal.company_id)


EventScope = Annotated[Scope, Depends(event_scope)]
_OPERATOR_ANSWERS: dict[int | str, dict[str, Any]] = {
    401: _problem("No valid API key"),
    403: _problem("The key lacks the operator scope"),
    404: _problem("No such event in the caller's scope"),
    422: _problem("Invalid filter, limit or cursor"),
}

events = APIRouter(prefix="/v1/webhooks/events", tags=["webhook events"])


@events.get("", response_model=EventList, responses=_OPERATOR_ANSWERS)
async def list_events(
    session: Session,
    scope: EventScope,
    status: Literal["pending", "processing", "processed", "failed", "ignored"] | None = None,
    source: Literal["calcom", "retell"] | None = None,
    limit: Annotated[int, Query(ge=1, le=replay.MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """Stored events, newest first (keyset pagination: pass `next_cursor` as `cursor`).

    A platform key without X-Company-ID lists the events no company claims.
    """
    page = await replay.list_events(
        session, scope, status=status, source=source, limit=limit, cursor=cursor
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


@events.get("/{event_id}", response_model=EventDetail, responses=_OPERATOR_ANSWERS)
async def get_event(
    session: Session, scope: EventScope, event_id: Annotated[str, Path(max_length=36)]
) -> dict[str, Any]:
    """One event with its payload."""
    return await replay.get_event(session, scope, event_id)


@events.post(
    "/{event_id}/replay",
    status_code=202,
    response_model=Accepted,
    responses={**_OPERATOR_ANSWERS, 409: _problem("The event is pending or processing")},
)
async def replay_event(
    request: Request,
    session: Session,
    scope: EventScope,
    event_id: Annotated[str, Path(max_length=36)],
) -> dict[str, Any]:
    """Process a processed, ignored or failed event again (pending, error cleared, enqueued
    after the commit)."""
    await replay.mark_for_replay(session, scope, event_id)
    replay.replay_after_commit(session, request.app.state.arq, event_id)
    return {"status": "accepted", "event_id": event_id}
