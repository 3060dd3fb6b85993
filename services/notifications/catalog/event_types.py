"""The 13 notification event types: who hears of them by default, and over which channels.

The labels live in `notification_event_mappings` (seeded by migration 0002, served by
`GET /v1/notification-events`); what the code needs to decide a delivery is here, frozen, so a
notify job never waits on a catalogue query.
"""

from __future__ import annotations

from typing import Final

from shared.models.notification import CHANNELS, NOTIFICATION_LANGUAGES

APPOINTMENT_EVENTS: Final = (
    "booking_confirmed",
    "booking_rescheduled",
    "booking_cancelled",
    "booking_reminder_24h",
    "booking_reminder_2h",
    "booking_no_show",
    "booking_sync_failed",
    "cancellation_fee_charged",
    "modification_quota_exceeded",
)
CALLBACK_EVENTS: Final = (
    "callback_requested",
    "callback_assigned",
    "callback_overdue",
    "callback_escalated",
)
EVENT_TYPES: Final = APPOINTMENT_EVENTS + CALLBACK_EVENTS
REMINDER_EVENTS: Final = ("booking_reminder_24h", "booking_reminder_2h")
REMINDER_DEFAULT_MINUTES: Final = {"booking_reminder_24h": 24 * 60, "booking_reminder_2h": 120}

# As seeded in migration 0002 (a test keeps the two equal).
DEFAULT_CHANNELS: Final[dict[str, tuple[str, ...]]] = {
    "booking_confirmed": ("email", "sms"),
    "booking_rescheduled": ("email", "sms"),
    "booking_cancelled": ("email", "sms"),
    "booking_reminder_24h": ("email",),
    "booking_reminder_2h": ("sms",),
    "booking_no_show": ("email",),
    "booking_sync_failed": ("email",),
    "cancellation_fee_charged": ("email",),
    "modification_quota_exceeded": ("email",),
    "callback_requested": ("email",),
    "callback_assigned": ("email",),
    "callback_overdue": ("email", "sms"),
    "callback_escalated": ("email", "sms"),
}

# Who is told when no level says otherwise: the customer of their own appointment; the
# branch (its contact address) of operational trouble; staff of what is handed to them.
DEFAULT_RECIPIENTS: Final[dict[str, tuple[str, ...]]] = {
    **dict.fromkeys(APPOINTMENT_EVENTS, ("customer",)),
    "booking_sync_failed": ("branch",),
    "callback_requested": ("branch",),
    "callback_assigned": ("staff",),
    "callback_overdue": ("branch", "staff"),
    "callback_escalated": ("branch", "staff"),
}

DEFAULT_LANGUAGE: Final = "de"
__all__ = [
    "APPOINTMENT_EVENTS",
    "CALLBACK_EVENTS",
    "CHANNELS",
    "DEFAULT_CHANNELS",
    "DEFAULT_LANGUAGE",
    "DEFAULT_RECIPIENTS",
    "EVENT_TYPES",
    "NOTIFICATION_LANGUAGES",
    "REMINDER_DEFAULT_MINUTES",
    "REMINDER_EVENTS",
]
