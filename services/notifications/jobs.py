"""Jobs of the notifications worker."""

from __future__ import annotations

import logging
from typing import Any

from shared import outbox
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.models import OutboxEvent

log = logging.getLogger(__name__)


async def notify(ctx: dict[str, Any], outbox_id: str) -> str:
    """Consume one booking event from the `notify` queue (idempotent by outbox id).

    No channel is configured yet (delivery comes with the notifications work), so the event is
    logged and marked done: there is nobody to tell.
    """
    db: Database = ctx["db"]
    async with db.transaction(SYSTEM) as session:
        event = await session.get(OutboxEvent, outbox_id)
        if event is None or event.status == "done":
            return "skipped"
        log.info(
            "notification event received",
            extra={"event_type": event.payload.get("event_type"), "outbox_id": outbox_id},
        )
        await outbox.mark(session, outbox_id, "done")
        return "no_channel"
