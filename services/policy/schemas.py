"""Request and response bodies of the policy API."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from shared.fields import normalize_phone

Level = Literal["company", "branch", "service", "staff"]
PolicyType = Literal["cancellation", "reschedule"]
Action = Literal["cancel", "reschedule"]
Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=36)]
Phone = Annotated[str, StringConstraints(max_length=50), AfterValidator(normalize_phone)]


_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_text(value: object) -> object:
    # pydantic would also read numbers and digit strings as Unix timestamps: refuse them.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATETIME.match(value):
        raise ValueError(
            "must be an ISO 8601 date-time with offset, e.g. 2026-03-30T10:00:00+02:00"
        )
    return value


def _instant(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("instant out of range") from exc
    if not 1900 <= utc.year <= 9998:
        raise ValueError("instant out of range (years 1900-9998)")
    return utc


Instant = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_instant)]


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
