"""Callback requests REST API (Bearer key with scope `service` or `operator`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from services.booking.callbacks import service as callbacks
from services.booking.callbacks.schemas import (
    AssignRequest,
    CallbackCreate,
    CallbackList,
    CallbackOut,
    CallbackStatus,
    EscalateRequest,
    NotesRequest,
)
from shared.db.types import utcnow
from shared.errors import Forbidden
from shared.web.auth import AnyPrincipal, Principal
from shared.web.deps import Session

router = APIRouter(prefix="/v1/callbacks", tags=["callbacks"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such callback request (in this company)"},
    409: {"description": "invalid_transition: not allowed from the current status"},
    422: {"description": "Invalid input; `field` names the offending field"},
}


async def _service_or_operator(principal: AnyPrincipal) -> Principal:
    if not (principal.has("service") or principal.has("operator")):
        raise Forbidden("This API key needs the 'service' or 'operator' scope.")
    return principal


CallbackPrincipal = Annotated[Principal, Depends(_service_or_operator)]


@router.post("", status_code=201, response_model=CallbackOut, responses=_ERRORS)
async def create_callback(
    principal: CallbackPrincipal, session: Session, body: CallbackCreate
) -> CallbackOut:
    """Record a callback request; due after the branch's SLA (default 120 minutes)."""
    return await callbacks.create(session, principal.company_id, body)


@router.get("", response_model=CallbackList, responses={422: _ERRORS[422]})
async def list_callbacks(
    principal: CallbackPrincipal,
    session: Session,
    status: Annotated[CallbackStatus | None, Query()] = None,
    overdue: Annotated[bool, Query(description="Only pending/assigned past due_at")] = False,
    branch_id: Annotated[str | None, Query(max_length=36)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page")
    ] = None,
) -> CallbackList:
    """Callback requests, oldest due first (keyset pages: pass `next_cursor` as `cursor`);
    instants in the branch's local offset."""
    return await callbacks.listing(
        session,
        status=status,
        overdue=overdue,
        branch_id=branch_id,
        now=utcnow(),
        limit=limit,
        cursor=cursor,
    )


@router.get("/{callback_id}", response_model=CallbackOut, responses=_ERRORS)
async def get_callback(
    principal: CallbackPrincipal, session: Session, callback_id: str
) -> CallbackOut:
    return await callbacks.answer(session, callback_id)


@router.post("/{callback_id}/assign", response_model=CallbackOut, responses=_ERRORS)
async def assign_callback(
    principal: CallbackPrincipal, session: Session, callback_id: str, body: AssignRequest
) -> CallbackOut:
    """pending|assigned -> assigned (to an active staff member of the company)."""
    await callbacks.assign(session, callback_id, body.staff_id)
    return await callbacks.answer(session, callback_id)


@router.post("/{callback_id}/contacted", response_model=CallbackOut, responses=_ERRORS)
async def mark_contacted(
    principal: CallbackPrincipal,
    session: Session,
    callback_id: str,
    body: NotesRequest | None = None,
) -> CallbackOut:
    """pending|assigned -> contacted."""
    await callbacks.mark_contacted(session, callback_id, body.notes if body else None)
    return await callbacks.answer(session, callback_id)


@router.post("/{callback_id}/resolve", response_model=CallbackOut, responses=_ERRORS)
async def resolve_callback(
    principal: CallbackPrincipal,
    session: Session,
    callback_id: str,
    body: NotesRequest | None = None,
) -> CallbackOut:
    """pending|assigned|contacted -> resolved."""
    await callbacks.resolve(session, callback_id, body.notes if body else None)
    return await callbacks.answer(session, callback_id)


@router.post("/{callback_id}/escalate", response_model=CallbackOut, responses=_ERRORS)
async def escalate_callback(
    principal: CallbackPrincipal, session: Session, callback_id: str, body: EscalateRequest
) -> CallbackOut:
    """Escalate an open callback (level = previous escalations + 1); its status is unchanged."""
    await callbacks.escalate(session, callback_id, body.reason, body.to)
    return await callbacks.answer(session, callback_id)
