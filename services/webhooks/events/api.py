"""The operators' event API: list, read and replay stored webhook events.

The routes use the usual API-key auth; see `services/webhooks/events/replay.py` for who sees
which events.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials

from services.webhooks.events import replay
from services.webhooks.events.replay import Scope
from services.webhooks.events.schemas import EventDetail, EventList
from services.webhooks.ingest.schemas import Accepted
from shared.db.tenancy import SYSTEM, bind_tenant
from shared.errors import Forbidden
from shared.security.api_keys import verify_key
from shared.web.auth import authenticate, bearer, enforce_key_limit
from shared.web.deps import Session


# OpenAPI `responses` entries: FastAPI's own dict shape.
def _problem(description: str) -> dict[str, Any]:
    return {"description": f"{description} (problem+json)"}


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
) -> EventList:
    """Stored events, newest first (keyset pagination: pass `next_cursor` as `cursor`).

    A platform key without X-Company-ID lists the events no company claims.
    """
    page = await replay.list_events(
        session, scope, status=status, source=source, limit=limit, cursor=cursor
    )
    return EventList(items=page.items, next_cursor=page.next_cursor)


@events.get("/{event_id}", response_model=EventDetail, responses=_OPERATOR_ANSWERS)
async def get_event(
    session: Session, scope: EventScope, event_id: Annotated[str, Path(max_length=36)]
) -> EventDetail:
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
) -> Accepted:
    """Process a processed, ignored or failed event again (pending, error cleared, enqueued
    after the commit)."""
    await replay.mark_for_replay(session, scope, event_id)
    replay.replay_after_commit(session, request.app.state.arq, event_id)
    return Accepted(status="accepted", event_id=event_id)
