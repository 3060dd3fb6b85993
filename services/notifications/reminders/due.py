"""When a reminder is due (pure): `start - offset` in elapsed time (UTC), not too late."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

LATE_GRACE: Final = timedelta(hours=1)


def is_due(
    *, starts_at: datetime, booked_at: datetime, offset: timedelta, now: datetime
) -> datetime | None:
    """The reminder's due instant when it should be staged at `now`, else None."""
    due = starts_at - offset
    if due > now or now >= starts_at or booked_at > due or now - due > LATE_GRACE:
        return None
    return due
