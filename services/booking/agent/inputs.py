"""Turning a voice agent's loose arguments into ids and instants, or a question to ask back.

Names are matched tolerantly (case, umlauts, ß/ss, small typos; several matches -> ask back with
the candidates); dates are ISO `YYYY-MM-DD`, times `HH:MM` in the branch's local time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.agent import speech
from services.booking.agent.matching import match
from services.booking.scheduling.availability import local_to_utc
from shared.fields import check_day
from shared.models import Branch, Service, Staff

_TIME = re.compile(r"^\s*(\d{1,2})(?:[:.](\d{2}))?\s*(?:uhr)?\s*$", re.IGNORECASE)


@dataclass
class Refusal(Exception):
    """The call cannot proceed; `body` is the agent's answer (HTTP 200)."""

    status: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def body(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message, **self.extra}


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


async def resolve_service(session: AsyncSession, spoken: str | None) -> Service:
    if spoken is None:
        raise invalid("missing_service")
    services = list(
        (
            await session.execute(
                sa.select(Service).where(Service.active.is_(True)).order_by(Service.name)
            )
        ).scalars()
    )
    found = match(spoken, [(s.id, s.name) for s in services])
    if found.status == "ambiguous":
        raise invalid("ambiguous", candidates=found.names)
    if found.status != "unique":
        raise invalid("unknown_service", candidates=[s.name for s in services])
    return next(s for s in services if s.id == found.id)


async def resolve_branch(
    session: AsyncSession, spoken: str | None, called_branch_id: str | None
) -> Branch | None:
    """The branch named by the caller, else the called number's branch, else the only one.

    None means "all branches" (a company hotline, and the caller named none).
    """
    branches = list(
        (
            await session.execute(
                sa.select(Branch).where(Branch.active.is_(True)).order_by(Branch.name)
            )
        ).scalars()
    )
    if spoken is not None:
        found = match(spoken, [(b.id, b.name) for b in branches])
        if found.status == "ambiguous":
            raise invalid("ambiguous", candidates=found.names)
        if found.status != "unique":
            raise invalid("unknown_branch", candidates=[b.name for b in branches])
        return next(b for b in branches if b.id == found.id)
    if called_branch_id is not None:
        return next((b for b in branches if b.id == called_branch_id), None)
    return branches[0] if len(branches) == 1 else None


async def resolve_staff(
    session: AsyncSession, spoken: str | None, branch: Branch | None
) -> Staff | None:
    if spoken is None:
        return None
    query = sa.select(Staff).where(Staff.active.is_(True)).order_by(Staff.name)
    if branch is not None:
        query = query.where(Staff.branch_id == branch.id)
    staff = list((await session.execute(query)).scalars())
    found = match(spoken, [(s.id, s.name) for s in staff])
    if found.status == "ambiguous":
        raise invalid("ambiguous", candidates=found.names)
    if found.status != "unique":
        raise invalid("unknown_staff", candidates=[s.name for s in staff])
    return next(s for s in staff if s.id == found.id)
