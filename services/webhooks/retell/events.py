"""Retell call events (call_started, call_ended, call_analyzed): keep one `calls` row per call.

Retell delivers each event at least once, in order but without blocking, so a late
`call_started` may arrive after `call_analyzed`, and two workers may process `call_ended` and
`call_analyzed` of one call at the same moment. Hence: the row is upserted by Retell's call id
(INSERT ... ON CONFLICT / ON DUPLICATE KEY, which also takes the row lock on MariaDB), merged
under that lock (a known value is never replaced by a missing one, an older snapshot only fills
gaps, the status only moves forward), and the "unresolved call -> callback request" rule is
decided under the same lock, so it fires once per call whatever the order or the concurrency.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict, cast

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks.ingest.handling import (
    PROCESSED,
    HandlerContext,
    Outcome,
    TransientFailure,
    ignored,
)
from shared.appointments.callbacks import create_callback
from shared.db.tenancy import bind_tenant
from shared.db.types import new_id, utcnow
from shared.integrations.retell.auth import _route
from shared.models import Appointment, Call, CallbackRequest, Company, Customer, WebhookEvent
from shared.phones import e164

log = logging.getLogger(__name__)

EVENTS = frozenset({"call_started", "call_ended", "call_analyzed"})
ENDING_EVENTS = frozenset({"call_ended", "call_analyzed"})
# Forward-only status order; equal ranks never replace each other.
STATUS_RANK = {
    "registered": 0,
    "ongoing": 1,
    "ended": 2,
    "not_connected": 2,
    "analyzed": 3,
    "error": 3,
}
# The least status an event implies (Retell's own samples have said `registered` on call_ended).
EVENT_FLOOR = {"call_started": "ongoing", "call_ended": "ended", "call_analyzed": "analyzed"}
CALLBACK_SETTING = "callback_on_unresolved_call"
CALLBACK_REASON = "Anruf ohne Termin beendet (automatisch)"
MIN_UNRESOLVED_MS = 20_000  # a call must last longer than this to deserve a callback
MAX_ID, MAX_REASON, MAX_NAME = 100, 100, 200
MAX_INT32 = 2**31 - 1
# MariaDB TEXT holds 65,535 bytes; a longer transcript is cut rather than failing the event.
MAX_TRANSCRIPT_BYTES = 65_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_EPOCH_MS = 253_402_300_799_000  # 9999-12-31T23:59:59Z


# Pure core --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallSnapshot:
    """What one event says about its call, normalized to our columns (None = not said)."""

    call_id: str
    status: str
    agent_id: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    direction: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_ms: int | None = None
    disconnection_reason: str | None = None
    transcript: str | None = None
    analysis: dict[str, Any] | None = None  # Retell's call_analysis JSON, stored as sent
    customer_name: str | None = None  # the greeting's dynamic variable, for a callback

    @property
    def our_number(self) -> str | None:
        """The business's number, which routes the call to its company and branch."""
        return self.from_number if self.direction == "outbound" else self.to_number


# The snapshot fields stored on `calls` by the merge (status is merged by rank).
MERGED_FIELDS = (
    "agent_id",
    "from_number",
    "to_number",
    "direction",
    "started_at",
    "ended_at",
    "duration_ms",
    "disconnection_reason",
    "transcript",
    "analysis",
)


def _short_text(value: object, limit: int) -> str | None:
    return value if isinstance(value, str) and value and len(value) <= limit else None


def _instant(ms: object) -> datetime | None:
    """Retell's epoch milliseconds as a UTC instant (exact: no float round trip)."""
    if isinstance(ms, bool) or not isinstance(ms, int) or not 0 < ms <= _MAX_EPOCH_MS:
        return None
    return _EPOCH + timedelta(milliseconds=ms)


def _transcript(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    raw = value.encode("utf-8")
    if len(raw) <= MAX_TRANSCRIPT_BYTES:
        return value
    return raw[:MAX_TRANSCRIPT_BYTES].decode("utf-8", errors="ignore")


def _duration(value: object, started: datetime | None, ended: datetime | None) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_INT32:
        return value
    if started is not None and ended is not None and ended >= started:
        return min(int((ended - started) / timedelta(milliseconds=1)), MAX_INT32)
    return None


def event_status(event: str, call_status: object) -> str:
    """The status an event gives the call: Retell's `call_status`, at least the event's floor."""
    floor = EVENT_FLOOR[event]
    if call_status == "error":
        return "error"
    if event == "call_analyzed":
        return floor
    if isinstance(call_status, str) and STATUS_RANK.get(call_status, -1) >= STATUS_RANK[floor]:
        return call_status
    return floor


def snapshot(event: str, call: object) -> CallSnapshot | None:
    """Normalize one event's `call` object; None when it names no usable call id."""
    if not isinstance(call, dict):
        return None
    call_id = _short_text(call.get("call_id"), MAX_ID)
    if call_id is None:
        return None
    started = _instant(call.get("start_timestamp"))
    ended = _instant(call.get("end_timestamp"))
    reason = call.get("disconnection_reason")
    analysis = call.get("call_analysis")
    variables = call.get("retell_llm_dynamic_variables")
    name = variables.get("customer_name") if isinstance(variables, dict) else None
    direction = call.get("direction")
    return CallSnapshot(
        call_id=call_id,
        status=event_status(event, call.get("call_status")),
        agent_id=_short_text(call.get("agent_id"), MAX_ID),
        from_number=e164(call.get("from_number")),
        to_number=e164(call.get("to_number")),
        direction=direction if direction in ("inbound", "outbound") else None,
        started_at=started,
        ended_at=ended,
        duration_ms=_duration(call.get("duration_ms"), started, ended),
        disconnection_reason=reason[:MAX_REASON] if isinstance(reason, str) and reason else None,
        transcript=_transcript(call.get("transcript")),
        analysis=analysis if isinstance(analysis, dict) else None,
        customer_name=name.strip()[:MAX_NAME] if isinstance(name, str) and name.strip() else None,
    )


class CallChanges(TypedDict, total=False):
    """The `calls` columns a merge changes, with their new values (absent: unchanged)."""

    status: str
    agent_id: str
    from_number: str
    to_number: str
    direction: str
    started_at: datetime
    ended_at: datetime
    duration_ms: int
    disconnection_reason: str
    transcript: str
    analysis: dict[str, Any]


def merge(stored: Mapping[str, Any], incoming: CallSnapshot) -> CallChanges:
    """The column changes `incoming` makes to the stored call.

    A missing value never erases a known one; a snapshot older than the stored state (lower
    status rank: a late call_started) only fills gaps; the status never moves backwards.
    """
    stored_rank = STATUS_RANK.get(stored.get("status") or "", 0)
    incoming_rank = STATUS_RANK[incoming.status]
    newer = incoming_rank >= stored_rank
    changes: dict[str, object] = {}  # keyed by MERGED_FIELDS, the CallChanges keys
    for name in MERGED_FIELDS:
        new, old = getattr(incoming, name), stored.get(name)
        if new is not None and new != old and (old is None or newer):
            changes[name] = new
    if incoming_rank > stored_rank:
        changes["status"] = incoming.status
    return cast(CallChanges, changes)


def callback_enabled(company_settings: Mapping[str, Any] | None) -> bool:
    """The company setting (default on); JSON false, 0 or "false"/"off"/"no" turn it off."""
    value = (company_settings or {}).get(CALLBACK_SETTING, True)
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "off", "no", "0")
    return value is None or bool(value)


def customer_number(call: Call) -> str | None:
    """The customer's side of the call: the caller, or whom an outbound call dialled."""
    return call.to_number if call.direction == "outbound" else call.from_number


def why_no_callback(call: Call, appointments: int, callbacks: int) -> str | None:
    """Why this ended call needs no automatic callback, or None when it does."""
    if call.direction == "outbound":
        return "outbound call: the business called the customer"
    if appointments or callbacks:
        return f"resolved ({appointments} appointments, {callbacks} callbacks)"
    if call.duration_ms is None or call.duration_ms <= MIN_UNRESOLVED_MS:
        return f"short call ({call.duration_ms} ms)"
    if (call.analysis or {}).get("call_successful") is True:
        return "marked successful"
    if call.from_number is None:
        return "anonymous or invalid caller number: cannot be called back"
    return None


# Shell ------------------------------------------------------------------------------------


async def handle(session: AsyncSession, event: WebhookEvent, ctx: HandlerContext) -> Outcome:
    """Apply one Retell call event (the `Handler` of services.webhooks.ingest.handling)."""
    payload = event.payload if isinstance(event.payload, dict) else {}
    name = payload.get("event", event.event_type)
    if name not in EVENTS:
        return ignored(f"unsupported event {str(name)[:50]!r}")
    snap = snapshot(name, payload.get("call"))
    if snap is None:
        return ignored("the payload names no call id")
    try:
        return await _apply(session, event, name, snap, ctx)
    except OperationalError as exc:  # deadlock, lock wait timeout, lost connection, busy
        raise TransientFailure(f"database fault: {exc.orig!r}"[:500]) from exc


async def _apply(
    session: AsyncSession, event: WebhookEvent, name: str, snap: CallSnapshot, ctx: HandlerContext
) -> Outcome:
    company, branch_id = await _route(session, snap.our_number, snap.agent_id, event.company_id)
    if event.company_id is not None and (company is None or company.id != event.company_id):
        # Attributed at ingestion: trust it; the branch comes only from a matching number.
        company, branch_id = await session.get(Company, event.company_id), None
    if company is None or not company.active:
        return ignored("unknown number")
    bind_tenant(session, company.id)
    call = await _upsert_locked(session, company.id, snap)
    if call is None:
        return ignored("this call id is recorded for another company")
    if call.branch_id is None and branch_id is not None:
        call.branch_id = branch_id
    appointments, callbacks, linked_customer = await _linked(session, snap.call_id)
    if call.customer_id is None:
        by_phone = await _customer_by_phone(session, customer_number(call))
        call.customer_id = by_phone or linked_customer
    log.info(
        "retell %s applied: call %s status %s, %d appointments and %d callbacks linked",
        name,
        snap.call_id,
        call.status,
        appointments,
        callbacks,
        extra={"company_id": company.id, "call_id": snap.call_id},
    )
    if name in ENDING_EVENTS:
        await _callback_if_unresolved(session, company, call, snap, appointments, callbacks, ctx)
    await session.flush()
    return PROCESSED


async def _upsert_locked(session: AsyncSession, company_id: str, snap: CallSnapshot) -> Call | None:
    """Insert the call if new, lock its row, merge the snapshot in; None if another tenant's.

    On MariaDB, ON DUPLICATE KEY takes the row's exclusive lock at once (INSERT IGNORE takes a
    shared one, and two workers then upgrading it block each other: measured, it stalls); the
    FOR UPDATE re-read is then free. SQLite writers are serialized by BEGIN IMMEDIATE. The lock
    is held until the job's transaction ends, which makes the callback decision once-only.
    """
    now = utcnow()
    row = {
        "id": new_id(),
        "company_id": company_id,
        "retell_call_id": snap.call_id,
        "direction": snap.direction or "inbound",
        "status": "registered",
        "created_at": now,
        "updated_at": now,
    }
    if session.get_bind().dialect.name == "sqlite":
        stmt: Any = sqlite.insert(Call).values(row).on_conflict_do_nothing()
    else:
        mstmt = mysql.insert(Call).values(row)
        stmt = mstmt.on_duplicate_key_update(retell_call_id=mstmt.inserted.retell_call_id)
    await session.execute(stmt)
    call = await session.scalar(
        sa.select(Call)
        .where(Call.retell_call_id == snap.call_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if call is None:
        return None
    stored = {name: getattr(call, name) for name in (*MERGED_FIELDS, "status")}
    for column, value in merge(stored, snap).items():
        setattr(call, column, value)
    return call


async def _linked(session: AsyncSession, call_id: str) -> tuple[int, int, str | None]:
    """Appointments and callback requests made during the call, and a customer they name."""
    appointment = (
        sa.select(sa.func.count(), sa.func.min(Appointment.customer_id))
        .select_from(Appointment)
        .where(Appointment.call_id == call_id)
    )
    callback = (
        sa.select(sa.func.count(), sa.func.min(CallbackRequest.customer_id))
        .select_from(CallbackRequest)
        .where(CallbackRequest.call_id == call_id)
    )
    appointments, appointment_customer = (await session.execute(appointment)).one()
    callbacks, callback_customer = (await session.execute(callback)).one()
    return int(appointments), int(callbacks), appointment_customer or callback_customer


async def _customer_by_phone(session: AsyncSession, phone: str | None) -> str | None:
    if phone is None:
        return None
    found: str | None = await session.scalar(sa.select(Customer.id).where(Customer.phone == phone))
    return found


async def _callback_if_unresolved(
    session: AsyncSession,
    company: Company,
    call: Call,
    snap: CallSnapshot,
    appointments: int,
    callbacks: int,
    ctx: HandlerContext,
) -> None:
    """Leave a callback request for an ended call that resolved nothing (once: row is locked)."""
    if not callback_enabled(company.settings):
        return
    reason = why_no_callback(call, appointments, callbacks)
    if reason is not None:
        log.info("no automatic callback for call %s: %s", call.retell_call_id, reason)
        return
    assert call.from_number is not None
    created = await create_callback(
        session,
        company_id=company.id,
        phone_number=call.from_number,
        reason=CALLBACK_REASON,
        customer_name=snap.customer_name,
        branch_id=call.branch_id,
        call_id=call.retell_call_id,
        now=ctx.now,
        priority="normal",
    )
    log.info(
        "automatic callback %s for unresolved call %s (%d ms)",
        created.id,
        call.retell_call_id,
        call.duration_ms,
        extra={"company_id": company.id, "call_id": call.retell_call_id},
    )
