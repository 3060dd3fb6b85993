"""Request and response bodies of the policy API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)

from shared.fields import Id, Instant, Phone

Level = Literal["company", "branch", "service", "staff"]
PolicyType = Literal["cancellation", "reschedule"]
Action = Literal["cancel", "reschedule"]


class EvaluateIn(BaseModel):
    """Either `appointment_id`, or the what-if form `service_id` + `start` (+ optional ids)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"appointment_id": "0b6c...", "action": "cancel"},
                {
                    "service_id": "5f1e...",
                    "start": "2026-03-30T10:00:00+02:00",
                    "action": "reschedule",
                    "at": "2026-03-29T09:00:00+02:00",
                    "customer_phone": "+491701234567",
                },
            ]
        },
    )

    action: Action
    at: Instant | None = Field(default=None, description="Evaluation instant; default now")
    appointment_id: Id | None = None
    service_id: Id | None = None
    start: Instant | None = None
    staff_id: Id | None = None
    branch_id: Id | None = None
    customer_phone: Phone | None = None


class PolicyOut(BaseModel):
    level: Level
    entity_id: str
    policy_type: PolicyType
    config: dict[str, Any]
    updated_at: str
    updated_by: str | None


class ChainOut(BaseModel):
    company_id: str
    branch_id: str | None
    service_id: str | None
    staff_id: str | None


class EffectiveOut(BaseModel):
    policy_type: PolicyType
    config: dict[str, Any]
    sources: dict[str, str] = Field(
        description="Per key: company, branch, service, staff or default"
    )
    chain: ChainOut


class QuotaOut(BaseModel):
    used: int
    limit: int | None
    window_days: int


class EvaluationOut(BaseModel):
    allowed: bool
    reason: Literal[
        "ok",
        "late_fee",
        "deadline_passed",
        "appointment_in_past",
        "not_modifiable",
        "quota_exceeded",
        "max_reschedules_reached",
    ]
    fee: str = Field(description="Decimal string with two places")
    currency: str
    deadline: str = Field(description="ISO 8601 in the branch's time zone")
    hours_before_appointment: str = Field(description="Decimal string, floored to 2 places")
    quota: QuotaOut
    action: Action
    policy_type: PolicyType
    appointment_id: str | None
