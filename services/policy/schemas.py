"""Request and response bodies of the policy API."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from services.policy.config_schema import (
    MAX_COUNT,
    MAX_HOURS,
    MAX_HOURS_PLACES,
    MAX_MONEY,
    MAX_NOTE_CHARS,
    MAX_TIERS,
    MAX_WINDOW_DAYS,
    normalize_config,
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


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # an absent key is "not set at this level", never null


def _optional(description: str, **constraints: Any) -> Any:
    return Field(
        default=None, description=description, json_schema_extra=_no_default, **constraints
    )


Hours = Annotated[Decimal, Field(ge=0, le=MAX_HOURS, decimal_places=MAX_HOURS_PLACES)]
Money = Annotated[Decimal, Field(ge=0, le=MAX_MONEY, decimal_places=2)]
Percent = Annotated[Decimal, Field(ge=0, le=100, decimal_places=2)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
NotNull = SkipJsonSchema[None]  # optional (absent: inherited), but null is refused

OPERATOR_EXAMPLE: dict[str, Any] = {
    "hours_before": 48,
    "allow_late": True,
    "fee_tiers": [{"min_hours_before": 0, "fee": 20}, {"min_hours_before": 24, "fee": 10}],
}
SHORTHAND_EXAMPLE: dict[str, Any] = {"hours_before": 24, "fee": 10.00}


class FeeTierIn(BaseModel):
    """One step of the fee ladder: exactly one of `fee` or `fee_percent`."""

    model_config = ConfigDict(extra="forbid")

    min_hours_before: Hours = Field(
        description="The tier applies from this many elapsed hours before the start; among "
        "the tiers the one with the largest min_hours_before not above the actual hours wins"
    )
    fee: Money | NotNull = _optional("Fixed fee in the appointment's currency (>= 0, 2 places)")
    fee_percent: Percent | NotNull = _optional("Fee as a percentage (0-100) of the booked price")


class PolicyConfigIn(BaseModel):
    """One level's cancellation or reschedule policy. Every key is optional: an absent key is
    inherited from the level above (company <- branch <- service <- staff) or the default.

    Numbers may be JSON numbers or decimal strings; they are stored as decimal strings. Staff
    level may set only `notify_staff` and `staff_note`. A stored config is canonical: the
    shorthand expanded, the tiers sorted (see ADR 0016).
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [OPERATOR_EXAMPLE, SHORTHAND_EXAMPLE]},
    )

    hours_before: Hours | NotNull = _optional(
        "Free-change deadline in elapsed hours before the start (real time: a DST day has 23 "
        "or 25 hours). A change at least this long before the appointment is free. Later it "
        "is refused (deadline_passed), or with allow_late costs the fee of the tier for the "
        "remaining hours. When no level sets it, the default 24 h decides what is allowed and "
        "the tiers apply at every hour. Default 24."
    )
    allow_late: bool | NotNull = _optional(
        "Allow changes after the deadline, at the tier's fee. Default false."
    )
    fee_tiers: Annotated[list[FeeTierIn], Field(max_length=MAX_TIERS)] | NotNull = _optional(
        "Fee ladder after the deadline, in any order (stored sorted by min_hours_before); "
        "two tiers with the same min_hours_before are refused. Default []."
    )
    fee: Money | NotNull = _optional(
        "Shorthand (the seeds' form): with hours_before, means allow_late true and this one "
        "fixed fee after the deadline; stored as allow_late + a single tier from 0 h. Not "
        "combinable with fee_tiers, fee_percent or allow_late false."
    )
    fee_percent: Percent | NotNull = _optional(
        "Shorthand like `fee`, as a percentage of the booked price."
    )
    max_per_window: Count | None = Field(
        default=None,
        description="Changes per customer within window_days (rolling); null: no limit "
        "(also lifts a limit set above). Default null.",
    )
    window_days: Annotated[int, Field(ge=1, le=MAX_WINDOW_DAYS)] | NotNull = _optional(
        "Length of the quota window in days of 24 elapsed hours. Default 30."
    )
    max_per_appointment: Count | None = Field(
        default=None,
        description="Reschedule policies only: how often one appointment may be moved; "
        "null: no limit. Default null.",
    )
    notify_staff: bool | NotNull = _optional("Preference: tell the staff member of changes.")
    staff_note: Annotated[str, Field(max_length=MAX_NOTE_CHARS)] | NotNull = _optional(
        "Preference: a note for the staff member."
    )

    @model_validator(mode="wrap")
    @classmethod
    def _normalized(cls, value: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        """Checked and normalized by the policy core, so each refusal names its key as
        `fee_tiers[1].fee` (InvalidInput passes through pydantic untouched)."""
        if isinstance(value, dict):
            value = normalize_config(value)
        return handler(value)

    def configured(self) -> dict[str, Any]:
        """The keys this level sets, as given to `validate_config` (no shorthand left)."""
        return self.model_dump(exclude_unset=True)


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
