"""Callback requests REST API (Bearer key with scope `service` or `operator`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.booking.callbacks import service as callbacks
from shared.appointments import callbacks as callback_core
from shared.db.types import utcnow
from shared.errors import Forbidden
from shared.fields import Id, Name, Phone
from shared.web.auth import AnyPrincipal, Principal
from shared.web.deps import Session

router = APIRouter(prefix="/v1/callbacks", tags=["callbacks"])

CallbackStatus = Literal["pending", "assigned", "contacted", "resolved", "expired"]
Priority = Literal["normal", "high", "urgent"]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
EscalationReason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)
]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
CallId = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]
Notes = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
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


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CallbackCreate(Input):
    phone_number: Phone
    reason: Reason
    customer_name: Name | None = None
    branch_id: Id | None = None
    service_id: Id | None = None
    staff_id: Id | None = None
    preferred_time: ShortText | None = Field(None, description="Free text, e.g. 'morgen früh'")
    priority: Priority = "normal"
    call_id: CallId | None = None


class AssignRequest(Input):
    staff_id: Id


class NotesRequest(Input):
    notes: Notes | None = None


class EscalateRequest(Input):
    reason: EscalationReason
    to: Id | None = Field(None, description="Staff id the callback is escalated to")


class CallbackOut(BaseModel):
    id: str
    company_id: str
    branch_id: str | None
    customer_id: str | None
    service_id: str | None
    staff_id: str | None
    assigned_to: str | None
    call_id: str | None
    phone_number: str
    customer_name: str | None
    reason: str
    preferred_time: str | None
    priority: Priority
    status: CallbackStatus
    due_at: str
    overdue: bool
    assigned_at: str | None
    contacted_at: str | None
    resolved_at: str | None
    contact_notes: str | None
    resolution_notes: str | None
    escalations: int = Field(description="How many times this callback was escalated")
    created_at: str


class CallbackList(BaseModel):
    items: list[CallbackOut]


async def _answer(session: Session, callback_id: str) -> dict[str, Any]:
    return callbacks.callback_json(await callbacks.get_view(session, callback_id))


@router.post("", status_code=201, response_model=CallbackOut, responses=_ERRORS)
async def create_callback(
    principal: CallbackPrincipal, session: Session, body: CallbackCreate
) -> dict[str, Any]:
    """Record a callback request; due after the branch's SLA (default 120 minutes)."""
    callback = await callback_core.create_callback(
        session,
        company_id=principal.company_id,
        phone_number=body.phone_number,
        reason=body.reason,
        customer_name=body.customer_name,
        branch_id=body.branch_id,
        service_id=body.service_id,
        staff_id=body.staff_id,
        call_id=body.call_id,
        preferred_time=body.preferred_time,
        priority=body.priority,
    )
    return await _answer(session, callback.id)


@router.get("", response_model=CallbackList)
async def list_callbacks(
    principal: CallbackPrincipal,
    session: Session,
    status: Annotated[CallbackStatus | None, Query()] = None,
    overdue: Annotated[bool, Query(description="Only pending/assigned past due_at")] = False,
    branch_id: Annotated[str | None, Query(max_length=36)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> dict[str, Any]:
    """Callback requests, oldest due first."""
    now = utcnow()
    views = await callbacks.list_views(
        session, status=status, overdue=overdue, branch_id=branch_id, now=now, limit=limit
    )
    return {"items": [callbacks.callback_json(view, now) for view in views]}


@router.get("/{callback_id}", response_model=CallbackOut, responses=_ERRORS)
async def get_callback(
    principal: CallbackPrincipal, session: Session, callback_id: str
) -> dict[str, Any]:
    return await _answer(session, callback_id)


@router.post("/{callback_id}/assign", response_model=CallbackOut, responses=_ERRORS)
async def assign_callback(
    principal: CallbackPrincipal, session: Session, callback_id: str, body: AssignRequest
) -> dict[str, Any]:
    """pending|assigned -> assigned (to an active staff member of the company)."""
    await callbacks.assign(session, callback_id, body.staff_id)
    return await _answer(session, callback_id)


@router.post("/{callback_id}/contacted", response_model=CallbackOut, responses=_ERRORS)
async def mark_contacted(
    principal: CallbackPrincipal,
    session: Session,
    callback_id: str,
    body: NotesRequest | None = None,
) -> dict[str, Any]:
    """pending|assigned -> contacted."""
    await callbacks.mark_contacted(session, callback_id, body.notes if body else None)
    return await _answer(session, callback_id)


@router.post("/{callback_id}/resolve", response_model=CallbackOut, responses=_ERRORS)
async def resolve_callback(
    principal: CallbackPrincipal,
    session: Session,
    callback_id: str,
    body: NotesRequest | None = None,
) -> dict[str, Any]:
    """pending|assigned|contacted -> resolved."""
    await callbacks.resolve(session, callback_id, body.notes if body else None)
    return await _answer(session, callback_id)


@router.post("/{callback_id}/escalate", response_model=CallbackOut, responses=_ERRORS)
async def escalate_callback(
    principal: CallbackPrincipal, session: Session, callback_id: str, body: EscalateRequest
) -> dict[str, Any]:
    """Escalate an open callback (level = previous escalations + 1); its status is unchanged."""
    await callbacks.escalate(session, callback_id, body.reason, body.to)
    return await _answer(session, callback_id)
