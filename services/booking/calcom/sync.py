"""Outbound sync: converge an appointment's Cal.com booking to the appointment's CURRENT state.

A `sync_appointment` job does not replay the change that staged it; it reads the appointment
as it is now and makes Cal.com agree (create, cancel, reschedule or nothing), so repeated,
reordered or concurrent jobs of one appointment are harmless. Jobs of one appointment are
serialised by a Redis lock (`sync:<appointment id>`): it only avoids wasted work, the
convergence itself is what keeps Cal.com right.

Ambiguous failures (a timeout, or a connection reset after Cal.com committed) are why every
booking we create carries `metadata.appointment_id`: once any attempt for the appointment has
started (`retrying`), a create first looks the booking up and adopts it. Attempts are counted
on the outbox row BEFORE Cal.com is called, so even a worker killed mid-call leaves the trace.

Transient failures (timeouts, resets, 429, 5xx, an open breaker) keep the outbox row pending;
a change still not accepted GIVE_UP_AFTER (24 h) after it was staged becomes a permanent
failure like a refusal: the appointment is `failed`, staff get `booking_sync_failed`, and the
customer gets a high-priority callback request (when we have a phone number to call back).

Customers without an e-mail address (phone-only callers) are sent to Cal.com as
`<phone digits>@phone.invalid`: Cal.com requires an attendee e-mail, and `.invalid` is reserved
by RFC 2606/6761, so no mail to that address can ever be delivered to anyone.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from shared.appointments.callbacks import create_callback
from shared.appointments.events import SYNC_JOB
from shared.db.types import utcnow
from shared.integrations.calcom.client import CalcomClient
from shared.integrations.calcom.errors import CalcomAddressRefused, CalcomRejected
from shared.integrations.calcom.errors import describe as calcom_describe
from shared.integrations.calcom.models import CalcomBooking
from shared.jobs.outbox import stage_notification
from shared.local_time import to_local
from shared.models import (
    LIVE_STATUSES,
    Appointment,
    Branch,
    Company,
    Customer,
    OutboxEvent,
    Service,
)

# A change Cal.com could not take for this long is given up and handed to people.
GIVE_UP_AFTER = timedelta(hours=24)
PHONE_EMAIL_DOMAIN = "phone.invalid"
FINAL_OUTBOX_STATUSES = frozenset({"done", "failed"})
DEAD_REMOTE_STATUSES = frozenset({"cancelled", "rejected"})
LOCK_PREFIX = "sync:"
_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class SyncRefused(Exception):
    """A permanent failure: retrying the same change cannot succeed (people must step in)."""


@dataclass(frozen=True)
class Snapshot:
    """What a sync attempt needs, read in one short transaction before Cal.com is called."""

    appointment_id: str
    company: Company
    version: int
    status: str
    start: datetime
    uid: str | None
    cancellation_reason: str | None
    event_type_id: int | None
    attendee_name: str
    attendee_email: str
    attendee_phone: str | None
    time_zone: str
    changed_at: datetime  # when the change was staged (the outbox row's creation)
    retrying: bool  # an earlier attempt for this appointment may have reached Cal.com

    @property
    def metadata(self) -> dict[str, str]:
        return {"appointment_id": self.appointment_id, "company_id": self.company.id}


# Pure helpers ---------------------------------------------------------------------------


def attendee_email(email: str | None, phone: str | None, customer_id: str) -> str:
    """The customer's e-mail, else a non-deliverable address derived from the phone number."""
    if email:
        return email
    digits = "".join(ch for ch in phone or "" if ch.isdigit())
    return f"{digits or customer_id}@{PHONE_EMAIL_DOMAIN}"


def expired(changed_at: datetime, now: datetime) -> bool:
    """True when a change has been pending longer than GIVE_UP_AFTER."""
    return now - changed_at >= GIVE_UP_AFTER


def callback_reason(snapshot: Snapshot, error: str) -> str:
    """The German reason staff read on the callback request (bounded to the column width)."""
    local = to_local(snapshot.start, snapshot.time_zone)
    when = local.strftime("%d.%m.%Y um %H:%M Uhr")
    if snapshot.status == "cancelled":
        text = (
            f"Die Stornierung des Termins am {when} konnte nicht an den Kalender (Cal.com) "
            f"übertragen werden. Bitte Kunden zurückrufen und den Termin klären. Fehler: {error}"
        )
    else:
        text = (
            f"Der Termin am {when} konnte nicht in den Kalender (Cal.com) übertragen werden. "
            f"Bitte Kunden zurückrufen und den Termin bestätigen oder neu vereinbaren. "
            f"Fehler: {error}"
        )
    return text[:1000]


# The Redis lock -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def appointment_lock(redis: Redis, appointment_id: str, ttl_s: float) -> AsyncIterator[bool]:
    """Hold `sync:<appointment id>` (yields False when another job holds it).

    The TTL must exceed the job timeout: a killed worker's lock then expires before ARQ makes
    its job visible again (job timeout + 10 s), and a live holder never loses it mid-job.
    """
    key = LOCK_PREFIX + appointment_id
    token = uuid.uuid4().hex
    held = bool(await redis.set(key, token, nx=True, px=int(ttl_s * 1000)))
    try:
        yield held
    finally:
        if held:
            await redis.eval(_RELEASE_LOCK, 1, key, token)  # type: ignore[misc]


# Database steps (each runs inside the caller's transaction) ----------------------------------


async def begin_attempt(
    session: AsyncSession, outbox_id: str, job_try: int
) -> Snapshot | str | None:
    """Count this attempt on the outbox row and read the appointment.

    Returns the snapshot, None when there is nothing to do (row finished or gone), or
    "local_only" after finishing the row of a company without Cal.com.
    """
    event = await session.get(OutboxEvent, outbox_id, with_for_update=True)
    if event is None or event.status in FINAL_OUTBOX_STATUSES:
        return None
    appointment_id = str(event.payload.get("appointment_id") or "")
    row = (
        await session.execute(
            sa.select(
                Appointment,
                Company,
                Service.calcom_event_type_id,
                Branch.timezone,
                Customer.name,
                Customer.email,
                Customer.phone,
            )
            .join(Company, Company.id == Appointment.company_id)
            .join(Service, Service.id == Appointment.service_id)
            .join(Branch, Branch.id == Appointment.branch_id)
            .join(Customer, Customer.id == Appointment.customer_id)
            .where(Appointment.id == appointment_id)
        )
    ).first()
    if row is None or not row[1].calcom_api_key:
        await finish_row(session, outbox_id, "done")
        return "local_only"
    appointment, company, event_type_id, time_zone, name, email, phone = row
    earlier = await session.scalar(
        sa.select(sa.func.max(OutboxEvent.attempts)).where(
            OutboxEvent.aggregate_id == appointment.id, OutboxEvent.job_name == SYNC_JOB
        )
    )
    await session.execute(
        sa.update(OutboxEvent)
        .where(OutboxEvent.id == outbox_id)
        .values(attempts=OutboxEvent.attempts + 1, updated_at=utcnow())
    )
    return Snapshot(
        appointment_id=appointment.id,
        company=company,
        version=appointment.version,
        status=appointment.status,
        start=appointment.starts_at,
        uid=appointment.calcom_booking_uid,
        cancellation_reason=appointment.cancellation_reason,
        event_type_id=event_type_id,
        attendee_name=name,
        attendee_email=attendee_email(email, phone, appointment.customer_id),
        attendee_phone=phone,
        time_zone=time_zone,
        changed_at=event.created_at,
        retrying=job_try > 1 or int(earlier or 0) > 0,
    )


async def finish_row(
    session: AsyncSession, outbox_id: str, status: str, error: str | None = None
) -> None:
    await session.execute(
        sa.update(OutboxEvent)
        .where(OutboxEvent.id == outbox_id)
        .values(status=status, last_error=error[:2000] if error else None, updated_at=utcnow())
    )


async def record_success(
    session: AsyncSession, outbox_id: str, snapshot: Snapshot, uid: str | None, now: datetime
) -> None:
    """Store the booking uid and mark the appointment synced (unless it changed meanwhile: the
    change's own job, queued behind this one, will finish the job) and the row done."""
    await session.execute(
        sa.update(Appointment)
        .where(Appointment.id == snapshot.appointment_id)
        .values(
            calcom_booking_uid=uid,
            synced_at=now,
            sync_error=None,
            sync_status=sa.case(
                (Appointment.version == snapshot.version, "synced"),
                else_=Appointment.sync_status,
            ),
        )
        .execution_options(synchronize_session=False)
    )
    await finish_row(session, outbox_id, "done")


async def record_transient(
    session: AsyncSession, outbox_id: str, error: str, available_at: datetime
) -> None:
    """Keep the row pending with the error; the sweeper picks it up after `available_at`."""
    await session.execute(
        sa.update(OutboxEvent)
        .where(OutboxEvent.id == outbox_id, OutboxEvent.status.not_in(FINAL_OUTBOX_STATUSES))
        .values(last_error=error[:2000], available_at=available_at, updated_at=utcnow())
    )


async def record_failure(
    session: AsyncSession, outbox_id: str, snapshot: Snapshot, error: str, now: datetime
) -> bool:
    """Mark the appointment `failed`, the row `failed`; the first time also tell the staff
    (`booking_sync_failed`) and leave a high-priority callback request. Returns whether the
    people were told (False when the appointment had already failed: told once is enough)."""
    appointment = await session.scalar(
        sa.select(Appointment).where(Appointment.id == snapshot.appointment_id).with_for_update()
    )
    await finish_row(session, outbox_id, "failed", error)
    if appointment is None:
        return False
    first_time = appointment.sync_status != "failed"
    appointment.sync_status = "failed"
    appointment.sync_error = error[:2000]
    await session.flush()
    if not first_time:
        return False
    stage_notification(
        session,
        company_id=snapshot.company.id,
        event_type="booking_sync_failed",
        aggregate_id=snapshot.appointment_id,
        payload={"appointment_id": snapshot.appointment_id, "error": error[:500]},
    )
    if snapshot.attendee_phone:
        await create_callback(
            session,
            company_id=snapshot.company.id,
            phone_number=snapshot.attendee_phone,
            reason=callback_reason(snapshot, error),
            customer_name=snapshot.attendee_name,
            branch_id=appointment.branch_id,
            service_id=appointment.service_id,
            staff_id=appointment.staff_id,
            priority="high",
            now=now,
        )
    return True


# Cal.com steps (no database transaction is open while these run) ----------------------------


async def converge(client: CalcomClient, snapshot: Snapshot) -> str | None:
    """Make Cal.com match the appointment; returns the booking uid that now represents it.

    Raises SyncRefused (permanent) or the client's errors (CalcomRejected: permanent;
    CalcomTransient, CircuitOpen, other CalcomError: transient).
    """
    if snapshot.status == "cancelled":
        return await _cancel(client, snapshot)
    if snapshot.status not in LIVE_STATUSES:
        return snapshot.uid  # completed / no-show: the past booking stays as it is in Cal.com
    if snapshot.event_type_id is None:
        raise SyncRefused("service has no Cal.com event type")
    if snapshot.uid is None:
        return await _create(client, snapshot, snapshot.event_type_id)
    remote = await client.get_booking(snapshot.uid)
    if remote is not None and remote.rescheduled_to_uid:
        # Our earlier reschedule committed but its answer was lost: follow it.
        remote = await client.get_booking(remote.rescheduled_to_uid)
    if remote is None or remote.status in DEAD_REMOTE_STATUSES:
        remote = await _find(client, snapshot, snapshot.event_type_id)
        if remote is None:
            # Cancelled or moved in Cal.com itself: that change reaches us through the
            # webhook and the reconciliation pull; pushing ours back would fight it.
            return snapshot.uid
    return await _align(client, snapshot, remote)


async def _create(client: CalcomClient, snapshot: Snapshot, event_type_id: int) -> str:
    if snapshot.retrying:
        found = await _find(client, snapshot, event_type_id)
        if found is not None:
            return await _align(client, snapshot, found)
    try:
        booking = await client.create_booking(
            event_type_id=event_type_id,
            start=snapshot.start,
            attendee_name=snapshot.attendee_name,
            attendee_email=snapshot.attendee_email,
            attendee_time_zone=snapshot.time_zone,
            attendee_phone=snapshot.attendee_phone,
            metadata=snapshot.metadata,
        )
    except CalcomAddressRefused:
        raise  # the guard refused the address: no booking was refused, nothing was sent
    except CalcomRejected as exc:
        if exc.slot_unavailable:
            # "already has booking" may be our own booking from an attempt whose answer
            # was lost: then it is a success.
            found = await _find(client, snapshot, event_type_id)
            if found is not None:
                return await _align(client, snapshot, found)
        taken = "the slot is taken; " if exc.slot_unavailable else ""
        raise SyncRefused(f"Cal.com refused the booking: {taken}{exc.message}") from exc
    return booking.uid


async def _cancel(client: CalcomClient, snapshot: Snapshot) -> str | None:
    uid = snapshot.uid
    if uid is None:
        if not snapshot.retrying or snapshot.event_type_id is None:
            return None  # never sent to Cal.com: nothing to cancel
        found = await _find(client, snapshot, snapshot.event_type_id)
        if found is None:
            return None
        uid = found.uid
    await client.cancel_booking(uid, snapshot.cancellation_reason)  # None (404): gone already
    return uid


async def _find(
    client: CalcomClient, snapshot: Snapshot, event_type_id: int
) -> CalcomBooking | None:
    """Our live booking for this appointment in Cal.com, if an earlier attempt made one."""
    found = await client.find_by_appointment(
        snapshot.appointment_id, event_type_id=event_type_id, start=snapshot.start
    )
    if found is None or found.status in DEAD_REMOTE_STATUSES:
        return None
    return found


async def _align(client: CalcomClient, snapshot: Snapshot, remote: CalcomBooking) -> str:
    """Move `remote` to the appointment's start if it differs; the uid representing it."""
    if remote.start == snapshot.start:
        return remote.uid
    moved = await client.reschedule_booking(remote.uid, snapshot.start)
    return moved.uid


def describe(exc: BaseException) -> str:
    """A one-line error for `last_error` / `sync_error`: tenants see it, so it never quotes
    what Cal.com wrote (our own SyncRefused reasons are shown as they are)."""
    if isinstance(exc, SyncRefused):
        return f"SyncRefused: {exc}"
    return calcom_describe(exc)
