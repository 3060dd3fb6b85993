"""Request and response bodies of the tenant resources; JSON names are the column names."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    create_model,
    field_validator,
)

from shared.errors import InvalidInput
from shared.fields import (
    MAX_INT32,
    Country,
    Currency,
    Email,
    Id,
    Instant,
    InstantOut,
    LongText,
    Minutes,
    Money,
    MoneyOut,
    Name,
    Phone,
    PositiveMinutes,
    Text20,
    Text100,
    Text255,
    TimeOfDay,
    TimeOut,
    Timezone,
    Weekday,
)

DAY_MINUTES = 24 * 60


class Input(BaseModel):
    """A request body: unknown fields (company_id, id, typos) are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    company_id: str
    created_at: InstantOut
    updated_at: InstantOut


class Filters(BaseModel):
    """Query parameters of a list: each one set is an equality filter on its column."""


def partial(model: type[Input]) -> type[Input]:
    """The PATCH body of `model`: every field optional, same per-field validation.

    Cross-field rules (end after start) are not copied: they run on the merged row.
    """
    fields: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        annotation: Any = info.annotation
        if info.metadata:
            annotation = Annotated[(annotation, *info.metadata)]
        fields[field_name] = (annotation | None, Field(default=None, description=info.description))
    model_name = model.__name__.removesuffix("Create") + "Update"
    return create_model(model_name, __base__=Input, __module__=__name__, **fields)


def _after_start(start_field: str) -> Any:
    def check(value: Any, info: ValidationInfo) -> Any:
        start = info.data.get(start_field)
        if start is not None and value is not None and value <= start:
            raise ValueError(f"must be after {start_field}")
        return value

    return check


# Branches ------------------------------------------------------------------------------

MAX_ESCALATION_STEPS = 10
MAX_ESCALATION_MINUTES = 7 * DAY_MINUTES


class EscalationStep(Input):
    staff_id: Id = Field(description="An active staff member of the company")
    after_minutes: Annotated[StrictInt, Field(ge=0, le=MAX_ESCALATION_MINUTES)] = Field(
        description="Minutes after the callback's due time"
    )


def _step_field(field: str, loc: tuple[int | str, ...]) -> str:
    """`chain` + (1, "after_minutes") -> `chain[1].after_minutes`."""
    return field + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)


def _escalation_chain(
    value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
) -> Any:
    """Validate the steps and name a bad one as `callback_escalation_chain[1].after_minutes`
    (InvalidInput passes through pydantic untouched); the times must strictly increase."""
    field = info.field_name or "callback_escalation_chain"
    try:
        steps: list[EscalationStep] | None = handler(value)
    except ValidationError as exc:
        errors = [
            {"field": _step_field(field, tuple(err["loc"])), "message": err["msg"]}
            for err in exc.errors()
        ]
        raise InvalidInput(
            f"Invalid value for: {', '.join(dict.fromkeys(e['field'] for e in errors))}",
            field=errors[0]["field"],
            errors=errors,
        ) from None
    for index, (before, step) in enumerate(zip(steps or [], (steps or [])[1:], strict=False)):
        if step.after_minutes <= before.after_minutes:
            raise InvalidInput(
                f"{field} must be strictly ordered by after_minutes ascending",
                field=f"{field}[{index + 1}].after_minutes",
            )
    return steps


EscalationSteps = Annotated[list[EscalationStep], Field(max_length=MAX_ESCALATION_STEPS)]
EscalationChain = Annotated[EscalationSteps | None, WrapValidator(_escalation_chain)]


class BranchCreate(Input):
    name: Name
    timezone: Timezone
    address_line: Text255 | None = None
    postal_code: Text20 | None = None
    city: Text100 | None = None
    country: Country = "DE"
    phone: Phone | None = None
    email: Email | None = None
    min_notice_minutes: Minutes | None = None
    booking_window_days: Annotated[int, Field(ge=1, le=3650)] | None = None
    callback_sla_minutes: PositiveMinutes | None = None
    callback_escalation_chain: EscalationChain = Field(
        default=None,
        description="Who an overdue callback goes to, level by level (level 1 at the first "
        "step's time); at most 10 steps, after_minutes strictly increasing",
    )
    active: bool = True


class BranchOut(Output):
    name: str
    timezone: str
    address_line: str | None
    postal_code: str | None
    city: str | None
    country: str
    phone: str | None
    email: str | None
    min_notice_minutes: int | None
    booking_window_days: int | None
    callback_sla_minutes: int | None
    callback_escalation_chain: list[EscalationStep] | None
    active: bool


class BranchFilters(Filters):
    active: bool | None = None


# Services ------------------------------------------------------------------------------

DayMinutes = Annotated[int, Field(ge=0, le=DAY_MINUTES)]


class ServiceCreate(Input):
    branch_id: Id | None = Field(default=None, description="NULL: offered by every branch")
    name: Name
    description: LongText | None = None
    duration_minutes: Annotated[int, Field(ge=1, le=DAY_MINUTES)]
    price: Money = Decimal("0.00")
    currency: Currency = "EUR"
    buffer_before_minutes: DayMinutes = 0
    buffer_after_minutes: DayMinutes = 0
    slot_step_minutes: Annotated[int, Field(ge=1, le=DAY_MINUTES)] = 15
    calcom_event_type_id: Annotated[int, Field(ge=1, le=MAX_INT32)] | None = None
    active: bool = True


class ServiceOut(Output):
    branch_id: str | None
    name: str
    description: str | None
    duration_minutes: int
    price: MoneyOut
    currency: str
    buffer_before_minutes: int
    buffer_after_minutes: int
    slot_step_minutes: int
    calcom_event_type_id: int | None
    active: bool


class ServiceFilters(Filters):
    branch_id: str | None = None
    active: bool | None = None


# Staff ---------------------------------------------------------------------------------


class StaffCreate(Input):
    branch_id: Id
    name: Name
    email: Email | None = None
    phone: Phone | None = None
    calcom_user_email: Email | None = Field(
        default=None, description="How this person is recognised as a Cal.com organizer"
    )
    active: bool = True


class StaffOut(Output):
    branch_id: str
    name: str
    email: str | None
    phone: str | None
    calcom_user_email: str | None
    active: bool


class StaffFilters(Filters):
    branch_id: str | None = None
    active: bool | None = None


class StaffServiceCreate(Input):
    staff_id: Id
    service_id: Id
    skill_level: Annotated[int, Field(ge=1, le=10)] = 1


class StaffServiceOut(Output):
    staff_id: str
    service_id: str
    skill_level: int


class StaffServiceFilters(Filters):
    staff_id: str | None = None
    service_id: str | None = None


# Schedules -----------------------------------------------------------------------------


class WorkingHoursCreate(Input):
    """One interval of a weekday (0 = Monday, or a name: "monday"/"mon") in branch-local time;
    gaps are breaks."""

    staff_id: Id
    weekday: Weekday
    start_time: TimeOfDay
    end_time: TimeOfDay

    _end_after_start = field_validator("end_time")(_after_start("start_time"))


class WorkingHoursOut(Output):
    staff_id: str
    weekday: int
    start_time: TimeOut
    end_time: TimeOut


class WorkingHoursFilters(Filters):
    staff_id: str | None = None
    # Bounded like the column's values: an unbounded int overflows the database's INTEGER.
    weekday: Weekday | None = None


class TimeOffCreate(Input):
    staff_id: Id
    starts_at: Instant
    ends_at: Instant
    reason: Text255 | None = None

    _end_after_start = field_validator("ends_at")(_after_start("starts_at"))


class TimeOffOut(Output):
    """`starts_at`/`ends_at` are given in the branch's local offset."""

    staff_id: str
    starts_at: InstantOut
    ends_at: InstantOut
    reason: str | None


class TimeOffFilters(Filters):
    staff_id: str | None = None


# Phone numbers -------------------------------------------------------------------------


class PhoneNumberCreate(Input):
    number: Phone
    branch_id: Id | None = Field(default=None, description="NULL: a company-wide hotline")
    label: Text100 | None = None
    retell_agent_id: Text100 | None = None
    active: bool = True


class PhoneNumberOut(Output):
    number: str
    branch_id: str | None
    label: str | None
    retell_agent_id: str | None
    active: bool


class PhoneNumberFilters(Filters):
    branch_id: str | None = None
