"""Request and response bodies of a branch's opening hours and closed days."""

from __future__ import annotations

from datetime import date, time
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from shared.fields import Day, Name, TimeOfDay, TimeOut, Weekday

MAX_INTERVALS = 70  # ten per weekday is far beyond any salon's week


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpeningInterval(Input):
    """One opening interval: weekday 0-6 (0 = Monday) or a name ("monday", "mon"), branch-local
    HH:MM; `end` after `start` on the same day."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {"weekday": "monday", "start": "09:00", "end": "18:00"}},
    )
    weekday: Weekday
    start: TimeOfDay
    end: TimeOfDay

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, value: time, info: ValidationInfo) -> time:
        start = info.data.get("start")
        if start is not None and value <= start:
            raise ValueError("must be after start (same day, HH:MM)")
        return value


class OpeningHoursIn(Input):
    """The whole week; an empty list removes the opening hours (no constraint)."""

    hours: Annotated[list[OpeningInterval], Field(max_length=MAX_INTERVALS)]


class OpeningIntervalOut(BaseModel):
    weekday: int
    weekday_name: str
    start: TimeOut
    end: TimeOut


class OpeningHoursOut(BaseModel):
    branch_id: str
    timezone: str
    items: list[OpeningIntervalOut]
    next_cursor: None = Field(default=None, description="Always null: the week is one page")


class ClosedDayIn(Input):
    day: Day = Field(description="Branch-local date, today or later", examples=["2027-12-24"])
    name: Name = Field(examples=["Heiligabend"])


class ClosedDayOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    branch_id: str
    day: date
    name: str
    source: Literal["manual", "holidays"]


class ClosedDayList(BaseModel):
    items: list[ClosedDayOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last page"
    )


class HolidayImportIn(Input):
    country: Annotated[
        str, StringConstraints(strip_whitespace=True, to_upper=True, min_length=2, max_length=3)
    ] = Field(description="ISO 3166-1 code, e.g. DE", examples=["DE"])
    subdivision: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)] | None
    ) = Field(default=None, description="State or region code, e.g. BY (Bavaria)", examples=["BY"])
    year: int = Field(ge=1900, le=9998, examples=[2027])


class HolidayImportOut(BaseModel):
    imported: int
    skipped_existing: int
    skipped_past: int
    items: list[ClosedDayOut] = Field(description="The closed days this import added")
