"""Answers of the customer data endpoints (DSGVO export and erasure)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErasureSummary(BaseModel):
    """What `POST /v1/admin/customers/{id}/erase` changed."""

    customer_id: str
    erased_at: str = Field(description="When the customer was first erased (ISO 8601, UTC)")
    already_erased: bool = Field(description="True when an earlier call erased the customer")
    rows: dict[str, int] = Field(
        description="Rows anonymized or redacted by this call, per table (tables with 0 left out)",
        examples=[{"customers": 1, "appointments": 2, "calls": 1, "webhook_events": 3}],
    )


class Ref(BaseModel):
    id: str
    name: str | None


class CustomerRecord(BaseModel):
    id: str
    name: str
    phone: str | None
    email: str | None
    language: str
    notes: str | None
    created_at: str
    updated_at: str
    erased_at: str | None


class AppointmentRecord(BaseModel):
    id: str
    reference: str | None
    branch: Ref
    service: Ref
    staff: Ref
    start: str = Field(description="Branch-local ISO 8601 with offset")
    end: str
    status: str
    source: str
    price: str
    currency: str
    notes: str | None
    cancellation_reason: str | None
    cancelled_at: str | None
    created_at: str


class CallRecord(BaseModel):
    id: str
    retell_call_id: str
    direction: str
    from_number: str | None
    to_number: str | None
    status: str
    started_at: str | None
    ended_at: str | None
    duration_ms: int | None
    disconnection_reason: str | None
    transcript: str | None
    analysis: dict[str, Any] | None  # Retell's call analysis as stored: its shape is the data


class CallbackRecord(BaseModel):
    id: str
    phone_number: str
    customer_name: str | None
    reason: str
    preferred_time: str | None
    status: str
    priority: str
    due_at: str
    created_at: str
    resolved_at: str | None
    resolution_notes: str | None


class DeliveryRecord(BaseModel):
    id: str
    event_type: str
    channel: str
    recipient: str = Field(description="The address as stored: masked")
    status: str
    attempts: int
    appointment_id: str | None
    callback_id: str | None
    sent_at: str | None
    created_at: str


class ModificationRecord(BaseModel):
    id: str
    appointment_id: str
    modification_type: str
    actor: str
    old_start: str | None
    new_start: str | None
    fee: str
    currency: str
    within_policy: bool
    reason: str | None
    created_at: str


class WebhookEventRecord(BaseModel):
    id: str
    source: str
    event_type: str
    status: str
    created_at: str
    payload: dict[str, Any]  # the vendor's webhook body as received: its shape is the data


class ApiCallRecord(BaseModel):
    id: str
    service: str
    method: str
    endpoint: str
    response_status: int | None
    created_at: str


class CustomerExport(BaseModel):
    """Everything stored about one customer (`GET /v1/admin/customers/{id}/export`).

    Instants are ISO 8601 with the offset of the branch (else the company) they belong to.
    """

    exported_at: str
    customer: CustomerRecord
    appointments: list[AppointmentRecord]
    calls: list[CallRecord]
    callbacks: list[CallbackRecord]
    notification_deliveries: list[DeliveryRecord]
    modifications: list[ModificationRecord] = Field(
        description="The policy-relevant history: every cancel and reschedule, with fees"
    )
    webhook_events: list[WebhookEventRecord] = Field(
        description="Received webhooks whose payload mentions the customer or their calls"
    )
    api_calls: list[ApiCallRecord] = Field(
        description="Logged outbound calls (Cal.com) that mention the customer"
    )
