"""What a booking change tells the rest of the system: outbox rows for Cal.com sync and notify."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared.models import Appointment
from shared.outbox import stage
from shared.queue import BOOKING_QUEUE, NOTIFY_QUEUE

SYNC_JOB = "sync_appointment"
NOTIFY_JOB = "notify"


def stage_appointment_events(
    session: AsyncSession,
    appointment: Appointment,
    event_type: str,
    extra: dict[str, Any] | None = None,
) -> None:
    """Stage `sync_appointment` and `notify` for this change in the current transaction."""
    payload = {
        "appointment_id": appointment.id,
        "company_id": appointment.company_id,
        "event_type": event_type,
        "version": appointment.version,
        **(extra or {}),
    }
    for queue, job in ((BOOKING_QUEUE, SYNC_JOB), (NOTIFY_QUEUE, NOTIFY_JOB)):
        stage(
            session,
            queue=queue,
            job=job,
            payload=payload,
            company_id=appointment.company_id,
            aggregate_id=appointment.id,
        )


def stage_notification(
    session: AsyncSession,
    *,
    company_id: str,
    event_type: str,
    aggregate_id: str | None,
    payload: dict[str, Any],
) -> None:
    """Stage one `notify` job (for events that need no Cal.com sync: sync failed, callbacks)."""
    stage(
        session,
        queue=NOTIFY_QUEUE,
        job=NOTIFY_JOB,
        payload={"company_id": company_id, "event_type": event_type, **payload},
        company_id=company_id,
        aggregate_id=aggregate_id,
    )
