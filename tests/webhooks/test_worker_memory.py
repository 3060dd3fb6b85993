"""The webhooks worker keeps no memory per event (the soak's worker growth, ~16 KB an event).

The cause was the tenant filter's cache of checked statements (`anchor_covered_tables`): weak
keys, but the value of an unchanged statement was the statement itself, so every statement
built per call (an IN list of this event's uids, a lookup by this event's organizer) stayed
alive for good. Counted here as live `Select` objects, not as RSS: deterministic and quick.
"""

from __future__ import annotations

import gc
import uuid
import weakref
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from services.webhooks.jobs import process_webhook_event
from shared.db.engine import Database
from shared.db.tenancy import anchor_covered_tables
from shared.models import Appointment
from tests.webhooks.conftest import create_calcom_salon, new_uid, store_event
from tests.webhooks.test_processing import START, created

EVENTS = 25


def _live_selects() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if isinstance(obj, sa.Select))


def test_the_tenant_filter_forgets_a_statement_built_per_call() -> None:
    unchanged = sa.select(Appointment).where(
        Appointment.calcom_booking_uid.in_([uuid.uuid4().hex, uuid.uuid4().hex])
    )
    # Reaches appointments only through WHERE: anchored with select_from (a copy).
    anchored = sa.select(sa.func.count()).where(Appointment.staff_id == uuid.uuid4().hex)
    assert anchor_covered_tables(unchanged) is unchanged
    copy = anchor_covered_tables(anchored)
    assert copy is not anchored
    assert anchor_covered_tables(anchored) is copy  # still checked once per statement
    refs = [weakref.ref(unchanged), weakref.ref(anchored), weakref.ref(copy)]
    del unchanged, anchored, copy
    gc.collect()
    assert [ref() for ref in refs] == [None, None, None]


async def test_applying_events_leaves_no_statement_behind(
    db: Database, ctx: dict[str, Any]
) -> None:
    cs = await create_calcom_salon(db)

    async def apply(first: int, count: int) -> None:
        for n in range(first, first + count):
            body = created(new_uid(), START + timedelta(hours=n))
            event_id = await store_event(db, cs.company_id, body)
            assert await process_webhook_event(ctx, event_id) == "processed"

    await apply(0, 3)  # warm-up: SQLAlchemy's compiled cache holds one of each shape
    before = _live_selects()
    await apply(3, EVENTS)
    # Before the fix: ~7 per event (every per-call statement of the mirror kept alive).
    assert _live_selects() - before < EVENTS
