"""Who receives one event over one channel, from its effective config and its event data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.notifications.channels.base import normalize_recipient
from services.notifications.deliveries.event_data import Contact, EventData


@dataclass(frozen=True)
class Recipient:
    """`address` is None when the role has no address for the channel (recorded as skipped)."""

    kind: str  # customer | staff | branch | address
    address: str | None
    language: str


def _reach(contact: Contact | None, channel: str) -> str | None:
    if contact is None:
        return None
    return contact.email if channel == "email" else contact.phone


def resolve(config: Mapping[str, Any], channel: str, data: EventData) -> list[Recipient]:
    """The recipients of the effective config, each once, with their language."""
    default_language = data.company_language
    staff_language = config.get("language") or default_language
    found: list[Recipient] = []
    seen: set[tuple[str, str | None]] = set()
    for entry in config.get("recipients", []):
        if isinstance(entry, dict):
            kind, address, language = "address", entry.get("address"), default_language
        elif entry == "customer":
            contact = data.customer
            kind, address = "customer", _reach(contact, channel)
            language = (contact.language if contact else None) or default_language
        elif entry == "staff":
            kind, address, language = "staff", _reach(data.staff, channel), staff_language
        elif entry == "branch":
            kind, address, language = "branch", _reach(data.branch, channel), default_language
        else:
            continue
        if address is not None:
            try:
                address = normalize_recipient(channel, address)
            except ValueError:
                address = None  # a stored address that is not one: recorded as skipped
        key = (kind, address) if address is None else ("", address)
        if key in seen:
            continue
        seen.add(key)
        found.append(Recipient(kind, address, language if language in ("de", "en") else "de"))
    return found
