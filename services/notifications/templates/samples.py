"""Sample raw data for previews and trial renders (a salon in Berlin, 24 November 2026).

A dict: it is the raw template data handed to `context.build_context`, keyed as the notify
job's event data is."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from services.notifications.catalog.event_types import CALLBACK_EVENTS
from services.notifications.templates.context import (
    DEFAULT_CURRENCY,
    DEFAULT_TIMEZONE,
    check_event,
)
from services.notifications.templates.locale import normalize_language

_SAMPLE_START: Final = datetime(2026, 11, 24, 13, 30, tzinfo=UTC)  # 14:30 in Berlin


def sample_raw(event_type: str, language: str = "de") -> dict[str, Any]:
    """Realistic raw data for previews: a salon in Berlin, an appointment on 2026-11-24."""
    check_event(event_type)
    english = normalize_language(language) == "en"
    raw: dict[str, Any] = {
        "company": "Salon Schnittpunkt",
        "customer_name": "Maria Schneider",
        "branch": "Mitte",
        "timezone": DEFAULT_TIMEZONE,
        "currency": DEFAULT_CURRENCY,
    }
    if event_type in CALLBACK_EVENTS:
        return raw | {
            "callback_phone": "+49 170 1234567",
            "callback_reason": "Question about hair colouring"
            if english
            else "Frage zu einer Färbung",
            "preferred_time": "afternoons" if english else "nachmittags",
            "due_at": datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
            "assigned_to": "Ben",
            "escalation_level": 1,
            "callback_id": "5b0f9a52-3c1e-4d7a-9e2b-8f6c1d2a4e10",
        }
    raw |= {
        "service": "Damenhaarschnitt",
        "staff": "Anna",
        "branch_address": "Torstraße 12, 10119 Berlin",
        "branch_phone": "+49 30 1234567",
        "starts_at": _SAMPLE_START,
        "ends_at": datetime(2026, 11, 24, 14, 15, tzinfo=UTC),
        "price": Decimal("48.00"),
        "appointment_id": "0b6c2f1e-7d4a-4e8b-9c3f-1a2b3c4d5e6f",
        "reference": "K7M2P9",
    }
    extra: dict[str, dict[str, Any]] = {
        "booking_rescheduled": {"old_starts_at": datetime(2026, 11, 20, 9, 0, tzinfo=UTC)},
        "booking_cancelled": {
            "fee": Decimal("15.00"),
            "reason": "Illness" if english else "Krankheit",
        },
        "cancellation_fee_charged": {
            "fee": Decimal("15.00"),
            "deadline_at": datetime(2026, 11, 23, 13, 30, tzinfo=UTC),
        },
        "booking_sync_failed": {"error": "Cal.com did not answer within 10 s (HTTP 504)"},
        "modification_quota_exceeded": {"quota_limit": 3, "window_days": 30},
    }
    return raw | extra.get(event_type, {})
