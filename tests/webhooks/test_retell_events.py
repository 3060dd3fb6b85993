"""Retell call events: the call upsert and merge, and the once-only automatic callback.

The events are the contract payloads (`contracts/retell/`) with our tenant's number as
`to_number`, stored as the ingestion stores them and applied the way the webhook job applies
them: `handle` inside one SYSTEM transaction per event, on SQLite and MariaDB.
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from redis.asyncio import Redis

from services.webhooks.ingest.handling import PROCESSED, HandlerContext, Outcome, ignored
from services.webhooks.retell.events import (
    CALLBACK_REASON,
    CallSnapshot,
    callback_enabled,
    event_status,
    handle,
    merge,
    snapshot,
)
from shared.appointments.callbacks import create_callback
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.jobs.queue import NOTIFY_QUEUE
from shared.models import (
    Call,
    CallbackRequest,
    Company,
    Customer,
    OutboxEvent,
    WebhookEvent,
)
from tests.support.contracts import RETELL
from tests.support.factories import Salon, create_salon, salon_appointment

CONTRACTS = RETELL
NOW = datetime(2025, 7, 1, 17, 5, tzinfo=UTC)
CALLER = "+12137771234"  # the contract payloads' from_number
STARTED = datetime(2025, 7, 1, 17, 0, tzinfo=UTC)  # start_timestamp 1751389200000
ENDED = datetime(2025, 7, 1, 17, 1, 35, 412000, tzinfo=UTC)  # end_timestamp 1751389295412


def contract(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CONTRACTS / name).read_text())
    return loaded


ENDED_BODY = contract("webhook_call_ended.constructed.json")
ANALYZED_BODY = contract("webhook_call_analyzed.constructed.json")


def body(
    event: str,
    salon: Salon,
    call_id: str,
    *,
    successful: bool | None = None,
    **call_fields: Any,
) -> dict[str, Any]:
    """A contract payload for `event`, routed to `salon`, for the call `call_id`.

    call_started is call_ended before the end: no end fields, transcript or analysis.
    """
    source = ANALYZED_BODY if event == "call_analyzed" else ENDED_BODY
    payload = copy.deepcopy(source)
    payload["event"] = event
    call = payload["call"]
    call.update(call_id=call_id, to_number=salon.phone_number)
    if event == "call_started":
        call["call_status"] = "ongoing"
        for key in ("end_timestamp", "duration_ms", "disconnection_reason", "transcript"):
            call.pop(key)
    if successful is not None:
        call["call_analysis"]["call_successful"] = successful
    call.update(call_fields)
    return payload


async def store(db: Database, payload: dict[str, Any], company_id: str | None = None) -> str:
    """Store the event as the ingestion endpoint does; returns the webhook_events id."""
    event = WebhookEvent(
        company_id=company_id,
        source="retell",
        event_id=f"{payload['event']}:{payload['call']['call_id']}",
        event_type=payload["event"],
        payload=payload,
    )
    async with db.transaction(SYSTEM) as session:
        session.add(event)
    return event.id


async def apply(db: Database, ctx: HandlerContext, event_id: str) -> Outcome:
    """What the webhook job does: load the stored event and handle it in one transaction."""
    async with db.transaction(SYSTEM) as session:
        event = await session.get(WebhookEvent, event_id)
        assert event is not None
        return await handle(session, event, ctx)


async def deliver(
    db: Database, ctx: HandlerContext, payload: dict[str, Any], company_id: str | None = None
) -> Outcome:
    return await apply(db, ctx, await store(db, payload, company_id))


async def load_call(db: Database, call_id: str) -> Call | None:
    async with db.transaction(SYSTEM, write=False) as session:
        found: Call | None = await session.scalar(
            sa.select(Call).where(Call.retell_call_id == call_id)
        )
        return found


async def callbacks_of(db: Database, call_id: str) -> list[CallbackRequest]:
    async with db.transaction(SYSTEM, write=False) as session:
        rows = await session.scalars(
            sa.select(CallbackRequest).where(CallbackRequest.call_id == call_id)
        )
        return list(rows)


async def set_callback_setting(db: Database, salon: Salon, enabled: bool) -> None:
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            sa.update(Company)
            .where(Company.id == salon.tenant.company_id)
            .values(settings={"callback_on_unresolved_call": enabled})
        )


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex}"


@pytest.fixture
async def ctx(settings: Settings, redis_url: str) -> AsyncIterator[HandlerContext]:
    redis = Redis.from_url(redis_url)
    yield HandlerContext(redis=redis, settings=settings, now=NOW)
    await redis.aclose()


@pytest.fixture
async def salon(db: Database) -> Salon:
    return await create_salon(db)


# Pure core --------------------------------------------------------------------------------


def test_event_status_takes_retell_status_but_never_below_the_event() -> None:
    assert event_status("call_started", "ongoing") == "ongoing"
    assert event_status("call_started", "registered") == "ongoing"
    assert event_status("call_ended", "registered") == "ended"  # Retell's own docs sample
    assert event_status("call_ended", "not_connected") == "not_connected"
    assert event_status("call_ended", "error") == "error"
    assert event_status("call_analyzed", "ended") == "analyzed"
    assert event_status("call_analyzed", "error") == "error"


def test_merge_keeps_known_values_and_moves_status_forward_only() -> None:
    stored = {"status": "analyzed", "transcript": "T", "duration_ms": 95412, "agent_id": None}
    late_start = CallSnapshot(call_id="c", status="ongoing", agent_id="a2", duration_ms=1)
    # An older snapshot only fills gaps; nothing it lacks is erased.
    assert merge(stored, late_start) == {"agent_id": "a2"}
    newer = CallSnapshot(call_id="c", status="analyzed", duration_ms=95500, transcript=None)
    assert merge({**stored, "status": "ended"}, newer) == {
        "duration_ms": 95500,
        "status": "analyzed",
    }
    assert merge({"status": "error"}, CallSnapshot(call_id="c", status="analyzed")) == {}


def test_snapshot_normalizes_the_contract_call() -> None:
    snap = snapshot("call_ended", ENDED_BODY["call"])
    assert snap is not None
    assert (snap.started_at, snap.ended_at, snap.duration_ms) == (STARTED, ENDED, 95412)
    assert snap.customer_name == "John Doe"
    assert snapshot("call_ended", {"call_id": ""}) is None
    assert snapshot("call_ended", "not an object") is None
    odd = snapshot("call_ended", {"call_id": "x", "from_number": "anonymous", "duration_ms": -5})
    assert odd is not None and (odd.from_number, odd.duration_ms) == (None, None)


def test_callback_setting_defaults_on() -> None:
    assert callback_enabled({}) is True
    assert callback_enabled(None) is True
    assert callback_enabled({"callback_on_unresolved_call": True}) is True
    assert callback_enabled({"callback_on_unresolved_call": False}) is False
    assert callback_enabled({"callback_on_unresolved_call": "false"}) is False


# Upsert and merge -----------------------------------------------------------------------


async def test_call_ended_upserts_every_field_from_the_payload(
    db: Database, ctx: HandlerContext, salon: Salon
) -> None:
    call_id = new_call_id()
    async with db.transaction(salon.tenant.company_id) as session:
        customer = Customer(name="John Doe", phone=CALLER)
        session.add(customer)
    assert await deliver(db, ctx, body("call_ended", salon, call_id)) == PROCESSED

    call = await load_call(db, call_id)
    assert call is not None
    assert call.company_id == salon.tenant.company_id
    assert call.agent_id == "oBeDLoLOeuAbiuaMFXRtDOLriTJ5tSxD"
    assert call.branch_id == salon.branch_id
    assert call.customer_id == customer.id
    assert (call.from_number, call.to_number) == (CALLER, salon.phone_number)
    assert call.direction == "inbound"
    assert call.status == "ended"
    assert (call.started_at, call.ended_at) == (STARTED, ENDED)
    assert call.duration_ms == 95412
    assert call.disconnection_reason == "user_hangup"
    assert call.transcript == ENDED_BODY["call"]["transcript"]
    assert call.analysis is None

    # 95 s, nothing booked, no analysis yet: one automatic callback, notified via the outbox.
    (callback,) = await callbacks_of(db, call_id)
    assert callback.company_id == salon.tenant.company_id
    assert callback.phone_number == CALLER
    assert callback.reason == CALLBACK_REASON
    assert callback.branch_id == salon.branch_id
    assert callback.customer_id == customer.id
    assert callback.customer_name == "John Doe"
    assert (callback.priority, callback.status) == ("normal", "pending")
    assert callback.due_at == NOW + timedelta(minutes=120)
    async with db.transaction(SYSTEM, write=False) as session:
        staged = list(
            await session.scalars(
                sa.select(OutboxEvent).where(OutboxEvent.aggregate_id == callback.id)
            )
        )
    assert [(e.queue, e.job_name, e.payload["event_type"]) for e in staged] == [
        (NOTIFY_QUEUE, "notify", "callback_requested")
    ]


async def test_call_analyzed_before_call_started_merges(
    db: Database, ctx: HandlerContext, salon: Salon
) -> None:
    call_id = new_call_id()
    assert await deliver(db, ctx, body("call_analyzed", salon, call_id)) == PROCESSED
    late = body("call_started", salon, call_id, agent_id="agent_late")
    assert await deliver(db, ctx, late) == PROCESSED

    call = await load_call(db, call_id)
    assert call is not None
    assert call.status == "analyzed"
    assert (call.started_at, call.ended_at, call.duration_ms) == (STARTED, ENDED, 95412)
    assert call.transcript == ANALYZED_BODY["call"]["transcript"]
    assert call.disconnection_reason == "user_hangup"
    assert call.analysis == ANALYZED_BODY["call"]["call_analysis"]
    # A known value is kept against an older snapshot's different one.
    assert call.agent_id == "oBeDLoLOeuAbiuaMFXRtDOLriTJ5tSxD"
    assert await callbacks_of(db, call_id) == []  # the contract call is marked successful


async def test_call_started_then_ended_then_analyzed(
    db: Database, ctx: HandlerContext, salon: Salon
) -> None:
    call_id = new_call_id()
    await deliver(db, ctx, body("call_started", salon, call_id))
    call = await load_call(db, call_id)
    assert call is not None
    assert (call.status, call.started_at, call.ended_at, call.transcript) == (
        "ongoing",
        STARTED,
        None,
        None,
    )
    await deliver(db, ctx, body("call_ended", salon, call_id, duration_ms=15000))
    await deliver(db, ctx, body("call_analyzed", salon, call_id, duration_ms=15000))
    call = await load_call(db, call_id)
    assert call is not None
    assert (call.status, call.duration_ms, call.ended_at) == ("analyzed", 15000, ENDED)
    assert call.analysis is not None and call.analysis["user_sentiment"] == "Positive"


async def test_same_event_twice_changes_nothing_the_second_time(
    db: Database, ctx: HandlerContext, salon: Salon
) -> None:
    call_id = new_call_id()
    event_id = await store(db, body("call_ended", salon, call_id))
    assert await apply(db, ctx, event_id) == PROCESSED
    first = await load_call(db, call_id)
    assert await apply(db, ctx, event_id) == PROCESSED
    again = await load_call(db, call_id)
    assert first is not None and again is not None
    assert (again.id, again.status, again.duration_ms) == (first.id, "ended", 95412)
    async with db.transaction(SYSTEM, write=False) as session:
        count = await session.scalar(
            sa.select(sa.func.count()).select_from(Call).where(Call.retell_call_id == call_id)
        )
    assert count == 1
    assert len(await callbacks_of(db, call_id)) == 1


# The automatic callback -----------------------------------------------------------------


@pytest.mark.parametrize(("duration_ms", "expected"), [(20000, 0), (20001, 1)])
async def test_callback_only_for_calls_over_20_seconds(
    db: Database, ctx: HandlerContext, salon: Salon, duration_ms: int, expected: int
) -> None:
    call_id = new_call_id()
    payload = body("call_analyzed", salon, call_id, successful=False, duration_ms=duration_ms)
    assert await deliver(db, ctx, payload) == PROCESSED
    assert len(await callbacks_of(db, call_id)) == expected


async def test_successful_call_gets_no_callback_in_either_order(
    db: Database, ctx: HandlerContext, salon: Salon
) -> None:
    call_id = new_call_id()
    await deliver(db, ctx, body("call_analyzed", salon, call_id, successful=True))
    await deliver(db, ctx, body("call_ended", salon, call_id))  # no analysis in call_ended
    assert await callbacks_of(db, call_id) == []


async def test_callback_made_at_call_end_survives_a_later_successful_analysis(
    db: Database, ctx: HandlerContext, salon: Salon
) -> None:
    call_id = new_call_id()
    await deliver(db, ctx, body("call_ended", salon, call_id))
    await deliver(db, ctx, body("call_analyzed", salon, call_id, successful=True))
    (callback,) = await callbacks_of(db, call_id)
    assert callback.status == "pending"


async def test_call_with_an_appointment_gets_no_callback_and_its_customer(
    db: Database, ctx: HandlerContext, salon: Salon
) -> None:
    call_id = new_call_id()
    starts = NOW + timedelta(days=2)
    async with db.transaction(salon.tenant.company_id) as session:
        customer = Customer(name="Erika Muster", phone="+491701234567")
        session.add(customer)
        await session.flush()
        session.add(salon_appointment(salon, customer.id, starts, source="agent", call_id=call_id))
    await deliver(db, ctx, body("call_analyzed", salon, call_id, successful=False))
    assert await callbacks_of(db, call_id) == []
    call = await load_call(db, call_id)
    assert call is not None and call.customer_id == customer.id  # the caller's number is unknown


async def test_call_with_a_callback_request_gets_no_second_one(
    db: Database, ctx: HandlerContext, salon: Salon
) -> None:
    call_id = new_call_id()
    async with db.transaction(salon.tenant.company_id) as session:
        requested = await create_callback(
            session,
            company_id=salon.tenant.company_id,
            phone_number="+491701234567",
            reason="Möchte Preise wissen",
            call_id=call_id,
            now=NOW,
        )
    await deliver(db, ctx, body("call_ended", salon, call_id))
    await deliver(db, ctx, body("call_analyzed", salon, call_id, successful=False))
    assert [cb.id for cb in await callbacks_of(db, call_id)] == [requested.id]


async def test_company_setting_off_means_no_callback(
    db: Database, ctx: HandlerContext, salon: Salon
) -> None:
    await set_callback_setting(db, salon, False)
    call_id = new_call_id()
    assert await deliver(db, ctx, body("call_ended", salon, call_id)) == PROCESSED
    assert await callbacks_of(db, call_id) == []
    assert await load_call(db, call_id) is not None  # the call itself is still recorded


async def test_anonymous_caller_cannot_be_called_back(
    db: Database, ctx: HandlerContext, salon: Salon
) -> None:
    call_id = new_call_id()
    payload = body("call_analyzed", salon, call_id, successful=False, from_number="anonymous")
    assert await deliver(db, ctx, payload) == PROCESSED
    call = await load_call(db, call_id)
    assert call is not None and call.from_number is None and call.duration_ms == 95412
    assert await callbacks_of(db, call_id) == []


async def test_concurrent_call_ended_and_call_analyzed_make_one_callback(
    db: Database, ctx: HandlerContext, salon: Salon
) -> None:
    """Two workers, two transactions, one call: one row, one callback, every round.

    Even rounds race on inserting a new call; odd ones on a call row call_started made.
    """
    for round_ in range(4):
        call_id = new_call_id()
        if round_ % 2:
            await deliver(db, ctx, body("call_started", salon, call_id))
        ended = await store(db, body("call_ended", salon, call_id))
        analyzed = await store(db, body("call_analyzed", salon, call_id, successful=False))
        outcomes = list(await asyncio.gather(apply(db, ctx, ended), apply(db, ctx, analyzed)))
        assert outcomes == [PROCESSED, PROCESSED]
        assert len(await callbacks_of(db, call_id)) == 1
        call = await load_call(db, call_id)
        assert call is not None
        assert (call.status, call.analysis is not None) == ("analyzed", True)


async def test_concurrent_replays_that_change_no_column_still_make_one_callback(
    db: Database, ctx: HandlerContext, salon: Salon
) -> None:
    """Applied with the setting off, replayed by two workers after it was turned on.

    The replays change no column of the call, so only the row lock taken by the upsert
    keeps the two from both finding no callback.
    """
    await set_callback_setting(db, salon, False)
    call_id = new_call_id()
    ended = await store(db, body("call_ended", salon, call_id))
    analyzed = await store(db, body("call_analyzed", salon, call_id, successful=False))
    await apply(db, ctx, ended)
    await apply(db, ctx, analyzed)
    assert await callbacks_of(db, call_id) == []
    await set_callback_setting(db, salon, True)
    outcomes = list(await asyncio.gather(apply(db, ctx, ended), apply(db, ctx, analyzed)))
    assert outcomes == [PROCESSED, PROCESSED]
    assert len(await callbacks_of(db, call_id)) == 1


# Routing and other events ---------------------------------------------------------------


async def test_unknown_number_is_ignored(db: Database, ctx: HandlerContext, salon: Salon) -> None:
    call_id = new_call_id()
    payload = body("call_ended", salon, call_id, to_number="+4930999999", agent_id="agent_none")
    assert await deliver(db, ctx, payload) == ignored("unknown number")
    assert await load_call(db, call_id) is None


async def test_event_attributed_at_ingestion_is_applied_to_that_company(
    db: Database, ctx: HandlerContext, salon: Salon
) -> None:
    call_id = new_call_id()
    payload = body("call_ended", salon, call_id, to_number="+4930999999", agent_id="agent_none")
    assert await deliver(db, ctx, payload, salon.tenant.company_id) == PROCESSED
    call = await load_call(db, call_id)
    assert call is not None
    assert (call.company_id, call.branch_id) == (salon.tenant.company_id, None)
    (callback,) = await callbacks_of(db, call_id)
    assert callback.branch_id is None


async def test_outbound_call_routes_by_our_number_and_gets_no_callback(
    db: Database, ctx: HandlerContext, salon: Salon
) -> None:
    async with db.transaction(salon.tenant.company_id) as session:
        customer = Customer(name="John Doe", phone=CALLER)
        session.add(customer)
    call_id = new_call_id()
    payload = body(
        "call_ended",
        salon,
        call_id,
        direction="outbound",
        from_number=salon.phone_number,
        to_number=CALLER,
    )
    assert await deliver(db, ctx, payload) == PROCESSED
    call = await load_call(db, call_id)
    assert call is not None
    assert (call.company_id, call.branch_id) == (salon.tenant.company_id, salon.branch_id)
    assert (call.direction, call.customer_id) == ("outbound", customer.id)
    assert await callbacks_of(db, call_id) == []


async def test_transcript_updated_is_ignored(
    db: Database, ctx: HandlerContext, salon: Salon
) -> None:
    call_id = new_call_id()
    payload = body("call_ended", salon, call_id)
    payload["event"] = "transcript_updated"
    outcome = await deliver(db, ctx, payload)
    assert outcome == ignored("unsupported event 'transcript_updated'")
    assert await load_call(db, call_id) is None
