"""Compare-and-set on an appointment's version: how booking and the Cal.com mirror write.

Every change races the other path (an agent moving an appointment while Cal.com reports a
move of the same one); the row's version decides, and the loser re-reads or gives up.
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.types import utcnow
from shared.models import LIVE_STATUSES, Appointment


async def compare_and_set(
    session: AsyncSession,
    row: Appointment,
    values: Mapping[str, object],
    *,
    bump: bool = True,
    live_only: bool = False,
) -> bool:
    """Write `values` if the row still has the version read (and, with `live_only`, is still
    live); the version goes up by one unless `bump` is False. True and `row` refreshed when
    the write won, False when a concurrent change did."""
    conditions = [Appointment.id == row.id, Appointment.version == row.version]
    if live_only:
        conditions.append(Appointment.status.in_(LIVE_STATUSES))
    changes = {**values, "updated_at": utcnow()}
    if bump:
        changes["version"] = row.version + 1
    result = await session.execute(
        sa.update(Appointment)
        .where(*conditions)
        .values(changes)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return False
    await session.refresh(row)
    return True
