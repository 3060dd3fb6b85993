"""The 4-level merge of notification configs: pure functions, no I/O.

The answers are JSON documents (the effective config is cached in Redis as it is), hence dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.notifications.catalog.event_types import (
    DEFAULT_CHANNELS,
    DEFAULT_RECIPIENTS,
    REMINDER_DEFAULT_MINUTES,
    REMINDER_EVENTS,
)
from services.notifications.configs.validation import BUSINESS_KEYS
from shared.hierarchy.chain import overlay


def defaults(event_type: str, channel: str) -> dict[str, Any]:
    """What applies when no level says anything (the catalogue's default channels)."""
    values: dict[str, Any] = {
        "enabled": channel in DEFAULT_CHANNELS[event_type],
        "recipients": list(DEFAULT_RECIPIENTS[event_type]),
        "template_override": None,
        "notify_staff": True,
        "language": None,
    }
    if event_type in REMINDER_EVENTS:
        values["reminder_offset_minutes"] = REMINDER_DEFAULT_MINUTES[event_type]
    return values


def merge_levels(
    configs: Mapping[str, Mapping[str, Any] | None], event_type: str, channel: str
) -> dict[str, Any]:
    """The effective config (`config`, `sources`: each key's level) of one event and channel.

    Business keys stored at staff level are ignored. A staff member's `notify_staff: false`
    takes "staff" out of the effective recipients and nothing else.
    """
    config, sources = overlay(configs, defaults(event_type, channel), staff_forbidden=BUSINESS_KEYS)
    if not config["notify_staff"] and "staff" in config["recipients"]:
        config["recipients"] = [item for item in config["recipients"] if item != "staff"]
    return {"config": config, "sources": sources}
