"""Request and response bodies of the notification template API."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from services.notifications.catalog.event_types import CHANNELS, EVENT_TYPES, NOTIFICATION_LANGUAGES

EventType = Literal[
    "booking_confirmed",
    "booking_rescheduled",
    "booking_cancelled",
    "booking_reminder_24h",
    "booking_reminder_2h",
    "booking_no_show",
    "booking_sync_failed",
    "cancellation_fee_charged",
    "modification_quota_exceeded",
    "callback_requested",
    "callback_assigned",
    "callback_overdue",
    "callback_escalated",
]
Channel = Literal["email", "sms", "whatsapp"]
Language = Literal["de", "en"]
Source = Literal["company", "default"]
# Written out for the type checker and the OpenAPI schema; the catalogue is the source.
assert get_args(EventType) == EVENT_TYPES
assert get_args(Channel) == CHANNELS
assert get_args(Language) == NOTIFICATION_LANGUAGES


class TemplateIn(BaseModel):
    """A company's template; sms and whatsapp have no subject."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "subject": "Ihr Termin am {{ date }} um {{ time }} Uhr",
                    "body": "Hallo {{ customer_name }},\n\nbis {{ start }}!\n{{ company }}",
                }
            ]
        },
    )

    subject: str | None = Field(default=None, description="Jinja2, email only, max 255")
    body: str = Field(description="Jinja2 over the event's variables, max 10,000 characters")


class TemplateOut(BaseModel):
    event_type: EventType
    channel: Channel
    language: Language
    subject: str | None
    body: str
    source: Source = Field(description="'company' (its own template) or 'default' (built in)")
    updated_at: str | None
    updated_by: str | None


class PreviewIn(BaseModel):
    """Render with sample data: the given body/subject, else the company's, else the default."""

    model_config = ConfigDict(extra="forbid")

    event_type: EventType
    channel: Channel
    language: Language = "de"
    subject: str | None = None
    body: str | None = None


class PreviewOut(BaseModel):
    subject: str | None
    body: str
