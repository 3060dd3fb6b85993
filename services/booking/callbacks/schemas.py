"""Request and answer bodies of the callback requests API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.fields import Id, Name, Phone

CallbackStatus = Literal["pending", "assigned", "contacted", "resolved", "expired"]
Priority = Literal["normal", "high", "urgent"]
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000)]
EscalationReason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)
]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
CallId = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]
Notes = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
LOCAL = "In the branch's local offset (UTC for a callback without branch), ISO 8601"


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
    due_at: str = Field(description=LOCAL)
    overdue: bool
    assigned_at: str | None = Field(description=LOCAL)
    contacted_at: str | None = Field(description=LOCAL)
    resolved_at: str | None = Field(description=LOCAL)
    contact_notes: str | None
    resolution_notes: str | None
    escalations: int = Field(description="How many times this callback was escalated")
    created_at: str = Field(description=LOCAL)


class CallbackList(BaseModel):
    items: list[CallbackOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )
