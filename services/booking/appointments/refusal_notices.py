"""A change refused because the customer's quota of changes is used up tells the customer so
(`modification_quota_exceeded`), once per appointment state and kind of change.

The refusal rolls the request's transaction back, so the notice is staged afterwards in a
transaction of its own, as booking failures are recorded (services/booking/ops/failures.py). Its
outbox id is derived from (appointment, version, kind): the agent asking again, a retried
request, another replica refusing the same change all file the same row, so one notice goes
out. The appointment's next change bumps its version, and a later refusal is news again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request
from sqlalchemy.exc import IntegrityError

from shared.appointments.events import notice_payload
from shared.db.engine import Database
from shared.errors import PolicyViolation
from shared.jobs.outbox import dispatch_staged, stage_notification
from shared.models import Appointment, OutboxEvent

log = logging.getLogger(__name__)

EVENT_TYPE = "modification_quota_exceeded"
STAGE_BUDGET_S = 2.0
_IDS = uuid.UUID("5d0c6c62-5b8e-4f7e-9a51-6f0f1c2b7a10")


@dataclass(frozen=True)
class QuotaNotice:
    """What the customer is told, captured while the refused transaction was still open."""

    company_id: str
    appointment_id: str
    kind: str  # cancel | reschedule
    payload: dict[str, Any]  # the outbox event's JSON document: its shape is the data

    @property
    def outbox_id(self) -> str:
        version = self.payload["version"]
        return str(uuid.uuid5(_IDS, f"{self.appointment_id}:{version}:{self.kind}"))


def attach(error: PolicyViolation, appointment: Appointment, kind: str) -> None:
    """Note on a quota refusal of `appointment` the notice it calls for (others: nothing)."""
    if error.extra.get("reason") != "quota_exceeded":
        return
    quota = error.extra.get("quota") or {}
    payload = notice_payload(
        appointment,
        {
            "modification_type": kind,
            "quota_limit": quota.get("limit"),
            "window_days": quota.get("window_days"),
        },
    )
    error.quota_notice = QuotaNotice(appointment.company_id, appointment.id, kind, payload)  # type: ignore[attr-defined]


def notice_in(error: BaseException) -> QuotaNotice | None:
    """The notice of a quota refusal anywhere in `error`'s chain, through causes and contexts
    alike (the agent's route turns the refusal into its own answer)."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        notice = getattr(current, "quota_notice", None)
        if isinstance(notice, QuotaNotice):
            return notice
        pending += [e for e in (current.__context__, current.__cause__) if e is not None]
    return None


async def _staged(db: Database, notice: QuotaNotice) -> bool:
    async with db.transaction(notice.company_id, write=False) as session:
        return await session.get(OutboxEvent, notice.outbox_id) is not None


async def stage_notice(db: Database, pool: Any, notice: QuotaNotice) -> bool:
    """Stage and send the notice in its own transaction; False when it was staged before or
    could not be (logged: the refusal stands either way, and is what the caller hears).

    A repeat is recognised by a read first, so that on SQLite it does not wait for the
    write lock; within `STAGE_BUDGET_S` in all, so a refusal is never held up for long."""
    try:
        with anyio.fail_after(STAGE_BUDGET_S):
            if await _staged(db, notice):
                return False
            try:
                async with db.transaction(notice.company_id) as session:
                    event = stage_notification(
                        session,
                        company_id=notice.company_id,
                        event_type=EVENT_TYPE,
                        aggregate_id=notice.appointment_id,
                        payload=notice.payload,
                    )
                    event.id = notice.outbox_id
            except IntegrityError:
                if await _staged(db, notice):  # another request filed it a moment ago
                    return False
                raise
            await dispatch_staged(session, pool)
    except Exception as exc:
        log.warning("quota notice not staged", extra={"error": f"{type(exc).__name__}: {exc}"})
        return False
    return True


async def _watch(request: Request) -> AsyncIterator[None]:
    try:
        yield
    except BaseException as error:
        notice = notice_in(error)
        if notice is not None:
            state = request.app.state
            await stage_notice(state.db, getattr(state, "arq", None), notice)
        raise


# Declare before the route's Session: it exits after the session has rolled back.
QuotaNotices = Annotated[None, Depends(_watch, scope="function")]
