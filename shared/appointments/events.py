"""What a booking change tells the rest of the system: outbox rows for Cal.com sync and notify."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from sqlalchemy.ext.asyncio import AsyncSession

from shared.jobs.outbox import stage, stage_notification
from shared.jobs.queue import BOOKING_QUEUE, NOTIFY_JOB, NOTIFY_QUEUE
from shared.models import Appointment

SYNC_JOB = "sync_appointment"


class AppointmentSnapshot(TypedDict):
    """The appointment part of an outbox payload (JSON stored in the outbox row)."""

    starts_at: str
    ends_at: str
    staff_id: str
    version: int


def appointment_snapshot(appointment: Appointment) -> AppointmentSnapshot:
    """What a notice describes: the appointment as this change left it (a notice sent later
    still tells of this change, not of whatever the row says by then)."""
    return AppointmentSnapshot(
        starts_at=appointment.starts_at.isoformat(),
        ends_at=appointment.ends_at.isoformat(),
        staff_id=appointment.staff_id,
        version=appointment.version,
    )


def notice_payload(
    appointment: Appointment, extra: Mapping[str, object] | None = None
) -> dict[str, Any]:
    """A notice's payload about `appointment`: its id, the snapshot, and what else it tells.
    A dict: the outbox row's JSON, whose extra keys differ per notice."""
    return {"appointment_id": appointment.id, **appointment_snapshot(appointment), **(extra or {})}


def stage_appointment_notice(
    session: AsyncSession, appointment: Appointment, event_type: str, extra: Mapping[str, object]
) -> None:
    """Stage a `notify` job alone (no sync): a notice about the appointment, not a change."""
    stage_notification(
        session,
        company_id=appointment.company_id,
        event_type=event_type,
        aggregate_id=appointment.id,
        payload=notice_payload(appointment, extra),
    )


def stage_appointment_events(
    session: AsyncSession,
    appointment: Appointment,
    event_type: str,
    extra: Mapping[str, object] | None = None,
) -> None:
    """Stage `sync_appointment` and `notify` for this change in the current transaction."""
    payload = {
        "company_id": appointment.company_id,
        "event_type": event_type,
        **notice_payload(appointment, extra),
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
