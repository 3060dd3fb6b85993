"""Cal.com events applied by the webhooks worker: the mirror of bookings made in Cal.com.

Every payload in `contracts/calcom/` is applied as Cal.com sent it; only the booking uid is
made unique per test (uids are globally UNIQUE) and, for the e2e snapshot, its redacted fields
get concrete values (listed in `e2e_snapshot`).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from services.webhooks.jobs import process_webhook_event
from shared.db.engine import Database
from shared.integrations.calcom import slots_cache
from shared.models import Appointment, CallbackRequest, Customer
from tests.support.factories import salon_appointment
from tests.webhooks.conftest import (
    ORGANIZER,
    SECOND_HOST,
    CalcomSalon,
    appointments,
    by_uid,
    contract,
    create_calcom_salon,
    deliver,
    get_event,
    iso,
    new_uid,
    outbox,
    store_event,
    with_uid,
)

T0 = datetime(2023, 5, 25, 9, 30, tzinfo=UTC)  # the BOOKING_CREATED example's start


def created(uid: str, start: datetime = T0, minutes: int = 60, **fields: Any) -> dict[str, Any]:
    """The documented BOOKING_CREATED example for `uid` at `start`."""
    return with_uid(
        contract("webhook-BOOKING_CREATED.example.json"),
        uid,
        startTime=iso(start),
        endTime=iso(start + timedelta(minutes=minutes)),
        **fields,
    )


def as_trigger(body: dict[str, Any], trigger: str, status: str | None = None) -> dict[str, Any]:
    """The same booking under another trigger (Cal.com sends the full booking for each)."""
    copied = with_uid(body, body["payload"]["uid"])
    copied["triggerEvent"] = trigger
    if status is not None:
        copied["payload"]["status"] = status
    return copied


def e2e_snapshot(uid: str, event_type_id: int, start: datetime) -> dict[str, Any]:
    """The Playwright snapshot of a delivered BOOKING_CREATED, its redacted fields filled in:
    createdAt, startTime/endTime (30 min), organizer email/timeZone/language, attendee
    timeZone/language, location, requiresConfirmation, eventTypeId, uid, videoCallData,
    appsStatus, bookingId, additionalInformation."""
    body = contract("webhook-BOOKING_CREATED.e2e-snapshot.json")
    body["createdAt"] = iso(start - timedelta(days=1))
    data = body["payload"]
    data.update(
        startTime=iso(start),
        endTime=iso(start + timedelta(minutes=30)),
        location="integrations:daily",
        requiresConfirmation=False,
        eventTypeId=event_type_id,
        uid=uid,
        videoCallData={},
        appsStatus=[],
        bookingId=4711,
        additionalInformation={},
    )
    data["organizer"].update(email=ORGANIZER, timeZone="Europe/Berlin", language={"locale": "en"})
    data["attendees"][0].update(timeZone="Europe/Berlin", language={"locale": "en"})
    return body


async def local_appointment(
    db: Database,
    cs: CalcomSalon,
    start: datetime,
    *,
    sync_status: str = "pending",
    uid: str | None = None,
    phone: str = "+4915112345678",
    source: str = "agent",
) -> Appointment:
    """An appointment booked through us (agent/API) for the organizer, 30 min + 10 buffer."""
    async with db.transaction(cs.company_id) as session:
        customer = await session.scalar(sa.select(Customer).where(Customer.phone == phone))
        if customer is None:
            customer = Customer(name="Erika Muster", phone=phone)
            session.add(customer)
            await session.flush()
        row: Appointment = salon_appointment(
            cs.salon,
            customer.id,
            start,
            cs.staff_id,
            status="confirmed",
            sync_status=sync_status,
            source=source,
            calcom_booking_uid=uid,
        )
        session.add(row)
    return row


# -- the real payloads ---------------------------------------------------------------------


async def test_booking_created_example_becomes_a_mirror_that_blocks_the_staff(
    db: Database, ctx: dict[str, Any], arq_pool: Any
) -> None:
    cs = await create_calcom_salon(db, event_type_id=7)
    version_before = await slots_cache.current_version(arq_pool, cs.company_id, 7)
    uid = new_uid()
    event = await deliver(ctx, cs.company_id, created(uid))
    assert (event.status, event.error_message, event.attempts) == ("processed", None, 1)
    assert event.processed_at is not None
    [mirror] = await appointments(db, cs.company_id)
    assert mirror.calcom_booking_uid == uid
    assert (mirror.source, mirror.status, mirror.sync_status) == ("calcom", "confirmed", "synced")
    assert (mirror.staff_id, mirror.branch_id) == (cs.staff_id, cs.salon.branch_id)
    assert mirror.service_id == cs.salon.service_id
    assert (mirror.starts_at, mirror.ends_at) == (T0, T0 + timedelta(hours=1))
    assert (mirror.blocked_from, mirror.blocked_until) == (T0, T0 + timedelta(minutes=70))
    assert (mirror.price, mirror.currency) == (Decimal("28.00"), "EUR")
    async with db.transaction(cs.company_id, write=False) as session:
        customer = await session.get(Customer, mirror.customer_id)
    assert customer is not None
    assert (customer.name, customer.email, customer.phone) == (
        "John Doe",
        "john.doe@example.com",
        None,
    )
    # A customer notice, but no sync_appointment: the booking is in Cal.com already.
    assert await outbox(db, cs.company_id) == [("notify", "booking_confirmed")]
    assert await slots_cache.current_version(arq_pool, cs.company_id, 7) == version_before + 1


async def test_e2e_snapshot_payload_with_concrete_values_is_mirrored(
    db: Database, ctx: dict[str, Any]
) -> None:
    cs = await create_calcom_salon(db, event_type_id=31)
    uid = new_uid()
    start = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)
    event = await deliver(ctx, cs.company_id, e2e_snapshot(uid, 31, start))
    assert event.status == "processed"
    mirror = await by_uid(db, cs.company_id, uid)
    assert (mirror.status, mirror.starts_at, mirror.ends_at) == (
        "confirmed",
        start,
        start + timedelta(minutes=30),
    )
    async with db.transaction(cs.company_id, write=False) as session:
        customer = await session.get(Customer, mirror.customer_id)
    assert customer is not None and (customer.name, customer.email) == (
        "Test Testson",
        "test@example.com",
    )


async def test_booking_cancelled_example_cancels_the_mirror(
    db: Database, ctx: dict[str, Any], arq_pool: Any
) -> None:
    cs = await create_calcom_salon(db, event_type_id=100, organizer="organizer@example.com")
    uid = new_uid()
    cancelled = with_uid(contract("webhook-BOOKING_CANCELLED.example.json"), uid)
    await deliver(ctx, cs.company_id, as_trigger(cancelled, "BOOKING_CREATED", "ACCEPTED"))
    before = await slots_cache.current_version(arq_pool, cs.company_id, 100)
    event = await deliver(ctx, cs.company_id, cancelled)
    assert event.status == "processed"
    [row] = await appointments(db, cs.company_id)
    assert (row.calcom_booking_uid, row.status, row.version) == (uid, "cancelled", 2)
    assert row.cancellation_reason == "I am no longer able to attend this session."
    assert row.cancelled_at is not None
    assert row.starts_at == datetime(2024, 1, 4, 10, 0, tzinfo=UTC)
    assert await outbox(db, cs.company_id) == [
        ("notify", "booking_confirmed"),
        ("notify", "booking_cancelled"),
    ]
    assert await slots_cache.current_version(arq_pool, cs.company_id, 100) == before + 1


async def test_meeting_ended_flat_payload_completes_the_mirror(
    db: Database, ctx: dict[str, Any]
) -> None:
    cs = await create_calcom_salon(db, event_type_id=50, organizer="organizer@example.com")
    uid = new_uid()
    ended = with_uid(contract("webhook-MEETING_ENDED.example.json"), uid)
    start = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
    create = created(uid, start, 15, eventTypeId=50)
    create["payload"]["organizer"]["email"] = "organizer@example.com"
    await deliver(ctx, cs.company_id, create)
    event = await deliver(ctx, cs.company_id, ended)
    assert event.status == "processed"
    [row] = await appointments(db, cs.company_id)
    assert (row.status, row.starts_at, row.ends_at) == (
        "completed",
        start,
        start + timedelta(minutes=15),
    )
    # Completion is no customer notice.
    assert await outbox(db, cs.company_id) == [("notify", "booking_confirmed")]


async def test_meeting_ended_for_an_unknown_booking_records_it_completed(
    db: Database, ctx: dict[str, Any]
) -> None:
    cs = await create_calcom_salon(db, event_type_id=50, organizer="organizer@example.com")
    uid = new_uid()
    event = await deliver(
        ctx, cs.company_id, with_uid(contract("webhook-MEETING_ENDED.example.json"), uid)
    )
    assert event.status == "processed"
    row = await by_uid(db, cs.company_id, uid)
    assert (row.status, row.source) == ("completed", "calcom")
    assert await outbox(db, cs.company_id) == []


async def test_no_show_updated_example_marks_and_unmarks_no_show(
    db: Database, ctx: dict[str, Any], arq_pool: Any
) -> None:
    cs = await create_calcom_salon(db, event_type_id=7)
    uid = new_uid()
    await deliver(ctx, cs.company_id, created(uid))
    before = await slots_cache.current_version(arq_pool, cs.company_id, 7)
    no_show = with_uid(contract("webhook-BOOKING_NO_SHOW_UPDATED.example.json"), uid)
    event = await deliver(ctx, cs.company_id, no_show)
    assert event.status == "processed"
    assert (await by_uid(db, cs.company_id, uid)).status == "no_show"
    # The payload names no event type: the appointment's service tells which cache to stale.
    assert await slots_cache.current_version(arq_pool, cs.company_id, 7) == before + 1
    cleared = with_uid(no_show, uid)
    cleared["payload"]["attendees"][0]["noShow"] = False
    cleared["payload"]["message"] = "test@example.com unmarked as no-show"
    await deliver(ctx, cs.company_id, cleared)
    row = await by_uid(db, cs.company_id, uid)
    assert (row.status, row.version) == ("completed", 3)  # the meeting lies in the past
    assert await outbox(db, cs.company_id) == [
        ("notify", "booking_confirmed"),
        ("notify", "booking_no_show"),
    ]


async def test_no_show_for_an_unknown_booking_is_ignored_with_the_reason(
    db: Database, ctx: dict[str, Any]
) -> None:
    cs = await create_calcom_salon(db)
    uid = new_uid()
    event = await deliver(
        ctx, cs.company_id, with_uid(contract("webhook-BOOKING_NO_SHOW_UPDATED.example.json"), uid)
    )
    assert (event.status, event.error_message) == (
        "ignored",
        f"no-show update for unknown booking {uid}",
    )


# -- our own bookings ----------------------------------------------------------------------


async def test_our_own_booking_recognised_by_uid_only_marks_the_sync(
    db: Database, ctx: dict[str, Any]
) -> None:
    cs = await create_calcom_salon(db)
    uid = new_uid()
    start = datetime(2030, 6, 3, 8, 0, tzinfo=UTC)
    ours = await local_appointment(db, cs, start, uid=uid)
    event = await deliver(ctx, cs.company_id, created(uid, start, 30))
    assert event.status == "processed"
    [row] = await appointments(db, cs.company_id)
    assert (row.id, row.source, row.sync_status, row.version) == (ours.id, "agent", "synced", 1)
    assert row.synced_at is not None
    assert await outbox(db, cs.company_id) == []


async def test_our_own_booking_recognised_by_metadata_stores_the_uid(
    db: Database, ctx: dict[str, Any]
) -> None:
    cs = await create_calcom_salon(db)
    uid = new_uid()
    start = datetime(2030, 6, 3, 9, 0, tzinfo=UTC)
    ours = await local_appointment(db, cs, start)  # our sync job has not stored the uid yet
    body = created(uid, start, 30, metadata={"appointment_id": ours.id})
    assert (await deliver(ctx, cs.company_id, body)).status == "processed"
    [row] = await appointments(db, cs.company_id)
    assert (row.id, row.calcom_booking_uid, row.sync_status) == (ours.id, uid, "synced")
    assert row.status == "confirmed"  # not evicted by its own booking
    assert await outbox(db, cs.company_id) == []


async def test_a_stale_copy_of_our_booking_does_not_undo_a_local_reschedule(
    db: Database, ctx: dict[str, Any]
) -> None:
    cs = await create_calcom_salon(db)
    uid = new_uid()
    moved_to = datetime(2030, 6, 4, 9, 0, tzinfo=UTC)
    ours = await local_appointment(db, cs, moved_to, uid=uid, sync_status="pending")
    stale = created(uid, moved_to - timedelta(days=1), 30)  # Cal.com still has the old time
    assert (await deliver(ctx, cs.company_id, stale)).status == "processed"
    [row] = await appointments(db, cs.company_id)
    assert (row.id, row.starts_at, row.sync_status) == (ours.id, moved_to, "pending")


# -- each trigger --------------------------------------------------------------------------


async def test_requested_then_created_confirms_and_requested_then_rejected_cancels(
    db: Database, ctx: dict[str, Any]
) -> None:
    cs = await create_calcom_salon(db)
    accepted, rejected = new_uid(), new_uid()
    first = datetime(2030, 7, 1, 8, 0, tzinfo=UTC)
    request = as_trigger(created(accepted, first, 30), "BOOKING_REQUESTED", "PENDING")
    assert (await deliver(ctx, cs.company_id, request)).status == "processed"
    assert (await by_uid(db, cs.company_id, accepted)).status == "pending"
    # A pending request blocks the time: an overlapping booking in Cal.com is refused.
    clash = await deliver(ctx, cs.company_id, created(new_uid(), first + timedelta(minutes=15)))
    pending_row = await by_uid(db, cs.company_id, accepted)
    assert (clash.status, clash.error_message) == (
        "ignored",
        f"overlaps appointment {pending_row.id}",
    )
    await deliver(ctx, cs.company_id, created(accepted, first, 30))
    assert (await by_uid(db, cs.company_id, accepted)).status == "confirmed"

    second = first + timedelta(hours=2)
    await deliver(
        ctx,
        cs.company_id,
        as_trigger(created(rejected, second, 30), "BOOKING_REQUESTED", "PENDING"),
    )
    reject = as_trigger(created(rejected, second, 30), "BOOKING_REJECTED", "REJECTED")
    await deliver(ctx, cs.company_id, reject)
    row = await by_uid(db, cs.company_id, rejected)
    assert (row.status, row.cancellation_reason) == ("cancelled", "rejected")
    assert await outbox(db, cs.company_id) == [
        ("notify", "booking_confirmed"),
        ("notify", "booking_cancelled"),
    ]


async def test_rescheduled_moves_the_appointment_in_place(
    db: Database, ctx: dict[str, Any]
) -> None:
    cs = await create_calcom_salon(db)
    old_uid, new = new_uid(), new_uid()
    await deliver(ctx, cs.company_id, created(old_uid))
    [original] = await appointments(db, cs.company_id)
    later = T0 + timedelta(days=1, hours=2)
    body = as_trigger(created(new, later, 60), "BOOKING_RESCHEDULED")
    body["payload"].update(rescheduleUid=old_uid, rescheduleStartTime=iso(T0))
    assert (await deliver(ctx, cs.company_id, body)).status == "processed"
    [row] = await appointments(db, cs.company_id)
    assert (row.id, row.calcom_booking_uid, row.version) == (original.id, new, 2)
    assert (row.starts_at, row.blocked_until) == (later, later + timedelta(minutes=70))
    assert row.status == "confirmed"
    assert await outbox(db, cs.company_id) == [
        ("notify", "booking_confirmed"),
        ("notify", "booking_rescheduled"),
    ]


async def test_meeting_started_changes_nothing_and_other_triggers_are_ignored(
    db: Database, ctx: dict[str, Any]
) -> None:
    cs = await create_calcom_salon(db, event_type_id=50, organizer="organizer@example.com")
    uid = new_uid()
    ended = with_uid(contract("webhook-MEETING_ENDED.example.json"), uid)
    await deliver(ctx, cs.company_id, as_trigger_flat(ended, "BOOKING_CREATED"))
    started = as_trigger_flat(ended, "MEETING_STARTED")
    assert (await deliver(ctx, cs.company_id, started)).status == "processed"
    row = await by_uid(db, cs.company_id, uid)
    assert (row.status, row.version) == ("confirmed", 1)
    paid = as_trigger_flat(ended, "BOOKING_PAID")
    event = await deliver(ctx, cs.company_id, paid)
    assert (event.status, event.error_message) == ("ignored", "unsupported trigger BOOKING_PAID")


def as_trigger_flat(body: dict[str, Any], trigger: str) -> dict[str, Any]:
    copied = with_uid(body, body["uid"])
    copied["triggerEvent"] = trigger
    return copied


async def test_unknown_event_type_and_unknown_organizer_are_ignored_with_the_reason(
    db: Database, ctx: dict[str, Any], arq_pool: Any
) -> None:
    cs = await create_calcom_salon(db, event_type_id=7)
    before = await slots_cache.current_version(arq_pool, cs.company_id, 999)
    unknown_type = await deliver(ctx, cs.company_id, created(new_uid(), eventTypeId=999))
    assert (unknown_type.status, unknown_type.error_message) == (
        "ignored",
        "unknown event type 999",
    )
    assert unknown_type.attempts == 1  # not retried
    assert await slots_cache.current_version(arq_pool, cs.company_id, 999) == before + 1
    stranger = created(new_uid())
    stranger["payload"]["organizer"]["email"] = "stranger@example.com"
    event = await deliver(ctx, cs.company_id, stranger)
    assert (event.status, event.error_message) == (
        "ignored",
        "unknown organizer stranger@example.com",
    )
    assert await appointments(db, cs.company_id) == []


async def test_organizer_falls_back_to_the_staff_members_email(
    db: Database, ctx: dict[str, Any]
) -> None:
    cs = await create_calcom_salon(db)
    uid = new_uid()
    body = created(uid)
    body["payload"]["organizer"]["email"] = SECOND_HOST.upper()
    assert (await deliver(ctx, cs.company_id, body)).status == "processed"
    assert (await by_uid(db, cs.company_id, uid)).staff_id == cs.salon.staff_ids[1]


# -- order, repetition, concurrency --------------------------------------------------------


async def test_cancel_before_create_leaves_a_cancelled_tombstone(
    db: Database, ctx: dict[str, Any]
) -> None:
    cs = await create_calcom_salon(db, event_type_id=100, organizer="organizer@example.com")
    uid = new_uid()
    cancelled = with_uid(contract("webhook-BOOKING_CANCELLED.example.json"), uid)
    assert (await deliver(ctx, cs.company_id, cancelled)).status == "processed"
    late_create = await deliver(
        ctx, cs.company_id, as_trigger(cancelled, "BOOKING_CREATED", "ACCEPTED")
    )
    assert late_create.status == "processed"
    [row] = await appointments(db, cs.company_id)
    assert (row.calcom_booking_uid, row.status, row.version) == (uid, "cancelled", 1)
    assert await outbox(db, cs.company_id) == []  # the customer never had it


async def test_reschedule_before_create_ends_with_only_the_new_booking_live(
    db: Database, ctx: dict[str, Any]
) -> None:
    cs = await create_calcom_salon(db)
    old_uid, new = new_uid(), new_uid()
    later = T0 + timedelta(days=2)
    body = as_trigger(created(new, later, 60), "BOOKING_RESCHEDULED")
    body["payload"]["rescheduleUid"] = old_uid
    assert (await deliver(ctx, cs.company_id, body)).status == "processed"
    assert (await deliver(ctx, cs.company_id, created(old_uid))).status == "processed"
    rows = {r.calcom_booking_uid: r for r in await appointments(db, cs.company_id)}
    assert (rows[new].status, rows[new].starts_at) == ("confirmed", later)
    assert rows[old_uid].status == "rescheduled"  # the tombstone; its late create did nothing
    assert rows[new].rescheduled_from_id == rows[old_uid].id
    live = [r for r in rows.values() if r.status in ("confirmed", "pending")]
    assert len(live) == 1


async def test_cancel_of_the_new_booking_before_its_reschedule_frees_the_old_time(
    db: Database, ctx: dict[str, Any]
) -> None:
    cs = await create_calcom_salon(db)
    old_uid, new = new_uid(), new_uid()
    await deliver(ctx, cs.company_id, created(old_uid))
    later = T0 + timedelta(days=2)
    rescheduled = as_trigger(created(new, later, 60), "BOOKING_RESCHEDULED")
    rescheduled["payload"]["rescheduleUid"] = old_uid
    await deliver(ctx, cs.company_id, as_trigger(created(new, later, 60), "BOOKING_CANCELLED"))
    await deliver(ctx, cs.company_id, rescheduled)
    rows = {r.calcom_booking_uid: r for r in await appointments(db, cs.company_id)}
    assert (rows[new].status, rows[old_uid].status) == ("cancelled", "rescheduled")


async def test_meeting_ended_of_the_new_booking_before_its_reschedule_is_not_revived(
    db: Database, ctx: dict[str, Any]
) -> None:
    cs = await create_calcom_salon(db, event_type_id=50, organizer="organizer@example.com")
    old_uid, new = new_uid(), new_uid()
    first = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
    create = created(old_uid, first, 15, eventTypeId=50)
    create["payload"]["organizer"]["email"] = "organizer@example.com"
    await deliver(ctx, cs.company_id, create)
    # The flat MEETING_ENDED of the new booking names the old one in `fromReschedule`.
    ended = with_uid(contract("webhook-MEETING_ENDED.example.json"), new, fromReschedule=old_uid)
    assert (await deliver(ctx, cs.company_id, ended)).status == "processed"
    rescheduled = as_trigger(create, "BOOKING_RESCHEDULED")
    rescheduled["payload"].update(
        uid=new,
        rescheduleUid=old_uid,
        startTime="2024-01-01T10:00:00.000Z",
        endTime="2024-01-01T10:15:00.000Z",
    )
    assert (await deliver(ctx, cs.company_id, rescheduled)).status == "processed"
    [row] = await appointments(db, cs.company_id)
    assert (row.calcom_booking_uid, row.status) == (new, "completed")
    assert row.starts_at == datetime(2024, 1, 1, 10, 0, tzinfo=UTC)


async def test_the_same_event_twice_takes_effect_once(db: Database, ctx: dict[str, Any]) -> None:
    cs = await create_calcom_salon(db)
    uid = new_uid()
    body = created(uid)
    event_id = await store_event(db, cs.company_id, body)
    assert await process_webhook_event(ctx, event_id) == "processed"
    assert await process_webhook_event(ctx, event_id) == "skipped"  # ARQ delivered it again
    assert (await get_event(db, event_id)).attempts == 1
    # The same booking state in a second stored delivery (reconciliation, a replay): no change.
    assert (await deliver(ctx, cs.company_id, body)).status == "processed"
    assert len(await appointments(db, cs.company_id)) == 1
    assert await outbox(db, cs.company_id) == [("notify", "booking_confirmed")]


async def test_two_events_for_one_uid_processed_concurrently_make_one_row(
    db: Database, ctx: dict[str, Any]
) -> None:
    cs = await create_calcom_salon(db)
    for day in range(3):
        uid = new_uid()
        start = T0 + timedelta(days=day)
        first = await store_event(db, cs.company_id, created(uid, start))
        second = await store_event(
            db, cs.company_id, as_trigger(created(uid, start), "BOOKING_CREATED")
        )
        results = await asyncio.gather(
            process_webhook_event(dict(ctx), first), process_webhook_event(dict(ctx), second)
        )
        assert sorted(results) == ["processed", "processed"]
        async with db.transaction(cs.company_id, write=False) as session:
            count = await session.scalar(
                sa.select(sa.func.count())
                .select_from(Appointment)
                .where(Appointment.calcom_booking_uid == uid)
            )
        assert count == 1


# -- the overlap rule ----------------------------------------------------------------------


async def test_a_calcom_booking_evicts_an_overlapping_local_one_not_yet_in_calcom(
    db: Database, ctx: dict[str, Any]
) -> None:
    cs = await create_calcom_salon(db)
    start = datetime(2030, 8, 5, 8, 0, tzinfo=UTC)
    local = await local_appointment(db, cs, start, sync_status="pending")
    uid = new_uid()
    event = await deliver(ctx, cs.company_id, created(uid, start + timedelta(minutes=20), 30))
    assert event.status == "processed"
    rows = {r.id: r for r in await appointments(db, cs.company_id)}
    loser = rows[local.id]
    assert (loser.status, loser.cancellation_reason) == ("cancelled", "calendar_conflict")
    assert (loser.sync_status, loser.sync_error) == ("failed", f"overlaps Cal.com booking {uid}")
    mirror = await by_uid(db, cs.company_id, uid)
    assert mirror.status == "confirmed"
    async with db.transaction(cs.company_id, write=False) as session:
        callbacks = list((await session.execute(sa.select(CallbackRequest))).scalars())
    assert [(c.phone_number, c.staff_id, c.priority) for c in callbacks] == [
        ("+4915112345678", cs.staff_id, "high")
    ]
    assert await outbox(db, cs.company_id) == [
        ("notify", "booking_sync_failed"),
        ("notify", "callback_requested"),
        ("notify", "booking_confirmed"),
    ]


async def test_a_calcom_booking_overlapping_one_already_in_calcom_is_ignored(
    db: Database, ctx: dict[str, Any]
) -> None:
    cs = await create_calcom_salon(db)
    start = datetime(2030, 8, 6, 8, 0, tzinfo=UTC)
    synced = await local_appointment(db, cs, start, sync_status="synced", uid=new_uid())
    # Our appointment blocks 08:00-08:40 (10 min buffer after): 08:35 still overlaps.
    event = await deliver(ctx, cs.company_id, created(new_uid(), start + timedelta(minutes=35)))
    assert (event.status, event.error_message) == ("ignored", f"overlaps appointment {synced.id}")
    [row] = await appointments(db, cs.company_id)
    assert (row.id, row.status) == (synced.id, "confirmed")
    # Right after the buffer is free.
    clear = await deliver(ctx, cs.company_id, created(new_uid(), start + timedelta(minutes=40)))
    assert clear.status == "processed"


async def test_a_reschedule_onto_an_appointment_in_calcom_is_ignored_and_moves_nothing(
    db: Database, ctx: dict[str, Any]
) -> None:
    cs = await create_calcom_salon(db)
    old_uid = new_uid()
    first = datetime(2030, 8, 7, 8, 0, tzinfo=UTC)
    await deliver(ctx, cs.company_id, created(old_uid, first, 30))
    taken = await local_appointment(db, cs, first + timedelta(hours=3), sync_status="synced")
    body = as_trigger(created(new_uid(), first + timedelta(hours=3), 30), "BOOKING_RESCHEDULED")
    body["payload"]["rescheduleUid"] = old_uid
    event = await deliver(ctx, cs.company_id, body)
    assert (event.status, event.error_message) == ("ignored", f"overlaps appointment {taken.id}")
    row = await by_uid(db, cs.company_id, old_uid)
    assert (row.starts_at, row.status, row.version) == (first, "confirmed", 1)


async def test_a_test_ping_and_an_event_of_no_company_change_nothing(
    db: Database, ctx: dict[str, Any]
) -> None:
    cs = await create_calcom_salon(db)
    ping = {
        "triggerEvent": "PING",
        "createdAt": "2024-01-01T15:00:00.000Z",
        "payload": {"type": "Test", "title": "Test trigger event"},
    }
    event = await deliver(ctx, cs.company_id, ping)
    assert (event.status, event.error_message) == ("ignored", "test ping")
    event_id = await store_event(db, None, created(new_uid()))
    assert await process_webhook_event(ctx, event_id) == "ignored"
    assert (await get_event(db, event_id)).error_message == "event of no known company"
    assert await appointments(db, cs.company_id) == []
