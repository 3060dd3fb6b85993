"""The built-in templates: 13 event types x (email, sms, whatsapp) x (de, en).

Customer-facing for the booking, reminder and policy events; staff-facing for the calendar
sync failure and the callback events. Each text is Jinja2 (rendered in the sandbox of
`templates.sandbox`, where a line of only block tags leaves no trace) over
plain strings already formatted for the language, and guards every value that may be
missing. SMS texts stay in the GSM-7 alphabet (no dashes or emoji), well under 320 characters.
Shared blocks are written once as `<<name>>` and filled in at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from services.notifications.catalog.event_types import (
    CHANNELS,
    EVENT_TYPES,
    NOTIFICATION_LANGUAGES,
)
from services.notifications.templates.default_blocks import BLOCKS
from services.notifications.templates.texts_booking import BOOKING_TEXTS
from services.notifications.templates.texts_callback import CALLBACK_TEXTS
from services.notifications.templates.texts_policy import POLICY_TEXTS
from shared.errors import InvalidInput

LANGUAGES: Final = NOTIFICATION_LANGUAGES

Template = tuple[str | None, str]  # (subject, body); the subject is None for sms and whatsapp

# event -> language -> (email subject, email body, sms body, whatsapp body)
_TEXTS: Final[Mapping[str, Mapping[str, tuple[str, str, str, str]]]] = {
    **BOOKING_TEXTS,
    **POLICY_TEXTS,
    **CALLBACK_TEXTS,
}


def _fill(text: str, language: str) -> str:
    for name, block in BLOCKS[language].items():
        text = text.replace(f"<<{name}>>", block)
    assert "<<" not in text, text
    return text


def _build() -> dict[tuple[str, str, str], Template]:
    built: dict[tuple[str, str, str], Template] = {}
    for event_type in EVENT_TYPES:
        for language in LANGUAGES:
            subject, email, sms, whatsapp = _TEXTS[event_type][language]
            built[event_type, "email", language] = (subject, _fill(email, language))
            built[event_type, "sms", language] = (None, _fill(sms, language))
            built[event_type, "whatsapp", language] = (None, _fill(whatsapp, language))
    return built


DEFAULTS: Final[Mapping[tuple[str, str, str], Template]] = _build()


def check_target(event_type: str, channel: str) -> None:
    """InvalidInput (naming the field) for an unknown event type or channel."""
    if event_type not in EVENT_TYPES:
        raise InvalidInput(f"Unknown event type '{event_type}'.", field="event_type")
    if channel not in CHANNELS:
        raise InvalidInput(f"Unknown channel '{channel}'.", field="channel")


def default_template(event_type: str, channel: str, language: str) -> Template:
    """The built-in (subject, body); a language without texts falls back to German."""
    check_target(event_type, channel)
    return DEFAULTS[event_type, channel, language if language in LANGUAGES else "de"]
