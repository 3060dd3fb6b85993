"""Turning a voice agent's loose arguments into ids and instants, or a question to ask back.

Names are matched tolerantly (case, umlauts, ß/ss, small typos; several matches -> ask back with
the candidates); dates are ISO `YYYY-MM-DD`, times `HH:MM` in the branch's local time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from services.booking.agent import speech
from services.booking.agent.matching import match
from services.booking.agent.schemas import RefusalOut
from services.booking.appointments.schemas import NamedSlotOut
from services.booking.scheduling.availability import local_to_utc
from shared.fields import check_day

_TIME = re.compile(r"^\s*(\d{1,2})(?:[:.](\d{2}))?\s*(?:uhr)?\s*$", re.IGNORECASE)


@dataclass
class Refusal(Exception):
    """The call cannot proceed; `answer` is what the agent gets (HTTP 200)."""

    status: str
    message: str
    reason: str | None = None
    alternatives: list[NamedSlotOut] | None = None

    @property
    def answer(self) -> RefusalOut:
        return RefusalOut(
            status=self.status,
            message=self.message,
            alternatives=self.alternatives,
            reason=self.reason,
        )


@dataclass(frozen=True)
class Named:
    """A service, branch or staff member as the caller may name it. `branch_id`: a staff
    member's branch; `timezone`: a branch's (or the company's) zone."""

    id: str
    name: str
    branch_id: str | None = None
    timezone: str | None = None


@dataclass(frozen=True)
class Catalog:
    """The company's active services, branches and staff (each in name order) and its zone."""

    timezone: str
    services: list[Named]
    branches: list[Named]
    staff: list[Named]


def invalid(ask: speech.AskField, **kwargs: Any) -> Refusal:
    return Refusal("invalid_request", speech.ask_for(ask, **kwargs))


def text_arg(args: dict[str, Any], name: str, max_length: int = 200) -> str | None:
    value = args.get(name)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value[:max_length] if value else None


def parse_date(raw: str | None, missing: speech.AskField = "missing_date") -> date:
    if raw is None:
        raise invalid(missing)
    try:
        return check_day(date.fromisoformat(raw.strip()[:10]))
    except ValueError:
        raise invalid("invalid_date") from None


def parse_time(raw: str | None, missing: speech.AskField = "missing_time") -> time:
    if raw is None:
        raise invalid(missing)
    found = _TIME.match(raw)
    if found is None:
        raise invalid("invalid_time")
    hour, minute = int(found.group(1)), int(found.group(2) or 0)
    if hour > 23 or minute > 59:
        raise invalid("invalid_time")
    return time(hour, minute)


def local_instant(day: date, at: time, timezone: str) -> datetime:
    """The UTC instant of a local date and time; a time skipped by DST is refused."""
    instant = local_to_utc(datetime.combine(day, at), timezone)
    if instant is None:
        raise invalid("invalid_time")
    return instant


def resolve_service(catalog: Catalog, spoken: str | None) -> Named:
    if spoken is None:
        raise invalid("missing_service")
    return _one(spoken, catalog.services, "unknown_service")


def resolve_branch(
    catalog: Catalog, spoken: str | None, called_branch_id: str | None
) -> Named | None:
    """The branch named by the caller, else the called number's branch, else the only one.

    None means "all branches" (a company hotline, and the caller named none).
    """
    branches = catalog.branches
    if spoken is not None:
        return _one(spoken, branches, "unknown_branch")
    if called_branch_id is not None:
        return next((b for b in branches if b.id == called_branch_id), None)
    return branches[0] if len(branches) == 1 else None


def resolve_staff(catalog: Catalog, spoken: str | None, branch: Named | None) -> Named | None:
    if spoken is None:
        return None
    staff = [s for s in catalog.staff if branch is None or s.branch_id == branch.id]
    return _one(spoken, staff, "unknown_staff")


def _one(spoken: str, candidates: list[Named], unknown: speech.AskField) -> Named:
    """The one candidate `spoken` names; else ask back (several: which one; none: the list)."""
    found = match(spoken, [(c.id, c.name) for c in candidates])
    if found.status == "ambiguous":
        raise invalid("ambiguous", candidates=found.names)
    if found.status != "unique":
        raise invalid(unknown, candidates=[c.name for c in candidates])
    return next(c for c in candidates if c.id == found.id)
