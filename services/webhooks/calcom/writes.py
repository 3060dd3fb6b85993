"""How the mirror writes an appointment: compare-and-set on the version, and customer notices.

Every change the mirror makes races the booking path (an agent moving the same appointment),
so it writes as the booking path does, guarded by the row's version; a lost race is a
`TransientFailure` and the webhook job retries with a fresh read.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks.ingest.handling import TransientFailure
from shared.appointments import writes
from shared.appointments.events import stage_appointment_notice
from shared.models import Appointment


async def compare_and_set(
    session: AsyncSession, row: Appointment, *, bump: bool = True, **values: Any
) -> None:
    """Compare-and-set on the version (`shared.appointments.writes`): a concurrent local
    change makes this a TransientFailure, and the retry re-reads."""
    if not await writes.compare_and_set(session, row, values, bump=bump):
        raise TransientFailure(f"appointment {row.id} changed concurrently; retry")


def notify(session: AsyncSession, row: Appointment, event_type: str, **extra: Any) -> None:
    """A customer notice for a change made in Cal.com; no `sync_appointment`: it is there."""
    stage_appointment_notice(session, row, event_type, {"source": "calcom", **extra})
