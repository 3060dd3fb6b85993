"""The callback state machine and escalation timing (pure: no I/O).

Open callbacks are `pending`, `assigned` or `contacted`; `resolved` and `expired` are final.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.errors import Conflict

log = logging.getLogger(__name__)

OPEN_STATUSES = frozenset({"pending", "assigned", "contacted"})
OVERDUE_STATUSES = ("pending", "assigned")
# action -> (statuses it may start from, resulting status; None keeps the current one)
TRANSITIONS: dict[str, tuple[frozenset[str], str | None]] = {
    "assign": (frozenset({"pending", "assigned"}), "assigned"),
    "contacted": (frozenset({"pending", "assigned"}), "contacted"),
    "resolve": (OPEN_STATUSES, "resolved"),
    "escalate": (OPEN_STATUSES, None),
}
# Column width: a longer reason is refused here, before MariaDB's strict mode would refuse it.
MAX_ESCALATION_REASON = 100


class InvalidTransition(Conflict):
    code, title = "invalid_transition", "Invalid transition"


def next_status(current: str, action: str) -> str:
    """The status after `action`, or InvalidTransition naming the current status."""
    allowed_from, target = TRANSITIONS[action]
    if current not in allowed_from:
        raise InvalidTransition(
            f"Cannot {action} a callback that is {current}.",
            current_status=current,
            action=action,
        )
    return current if target is None else target


def is_overdue(status: str, due: datetime, now: datetime) -> bool:
    return status in OVERDUE_STATUSES and due < now


@dataclass(frozen=True)
class EscalationStep:
    """One level of a branch's escalation chain: who, and how long after the due time."""

    staff_id: str
    after_minutes: int


def parse_chain(raw: Any) -> tuple[EscalationStep, ...]:
    """The stored chain as steps; none when unset. A malformed chain (the admin API refuses
    one, so only a manual edit makes it) counts as none, logged: level 1 still happens."""
    if not raw:
        return ()
    try:
        return tuple(
            EscalationStep(str(step["staff_id"]), int(step["after_minutes"])) for step in raw
        )
    except (KeyError, TypeError, ValueError):
        log.warning("ignoring a malformed callback escalation chain", extra={"chain": raw})
        return ()


def escalation_time(due: datetime, chain: Sequence[EscalationStep], level: int) -> datetime | None:
    """When escalation `level` (1-based) falls due: due time plus its step's minutes. Level 1
    (overdue) exists without a chain too, at the due time; past the chain there is none."""
    if level <= len(chain):
        return due + timedelta(minutes=chain[level - 1].after_minutes)
    return due if level == 1 else None
