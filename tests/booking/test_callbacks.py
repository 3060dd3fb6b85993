"""Callback requests: creation and SLA, the state machine, escalations, overdue, isolation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from services.booking.callbacks import service as callbacks
from services.booking.callbacks import states
from shared.appointments.callbacks import create_callback, due_at
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.errors import InvalidInput
from shared.jobs.queue import NOTIFY_QUEUE
from shared.models import Branch, CallbackEscalation, CallbackRequest, Customer, OutboxEvent
from shared.models.callback import CALLBACK_STATUSES
from tests.support.factories import Salon, create_salon, create_tenant

PHONE = "+491701234567"


def body(**extra: Any) -> dict[str, Any]:
    return {"phone_number": "0170 1234567", "reason": "Frage zur Färbung", **extra}


def instant(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None, value
    return parsed


async def set_sla(db: Database, salon: Salon, minutes: int | None) -> None:
    async with db.transaction(salon.tenant.company_id) as session:
        await session.execute(
            sa.update(Branch)
            .where(Branch.id == salon.branch_id)
            .values(callback_sla_minutes=minutes)
        )


async def create(booking: httpx.AsyncClient, salon: Salon, **extra: Any) -> dict[str, Any]:
    response = await booking.post("/v1/callbacks", json=body(**extra), headers=salon.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def act(
    booking: httpx.AsyncClient, salon: Salon, cb: dict[str, Any], action: str, **payload: Any
) -> httpx.Response:
    return await booking.post(
        f"/v1/callbacks/{cb['id']}/{action}", json=payload, headers=salon.headers
    )


async def outbox(db: Database, callback_id: str) -> list[OutboxEvent]:
    async with db.transaction(SYSTEM, write=False) as session:
        rows = await session.scalars(
            sa.select(OutboxEvent)
            .where(OutboxEvent.aggregate_id == callback_id)
            .order_by(OutboxEvent.created_at, OutboxEvent.id)
        )
        return list(rows)


async def count_callbacks(db: Database, company_id: str) -> int:
    async with db.transaction(company_id, write=False) as session:
        total = await session.scalar(sa.select(sa.func.count()).select_from(CallbackRequest))
        return int(total or 0)


# Pure core ------------------------------------------------------------------------------

ALLOWED = {
    "assign": {"pending": "assigned", "assigned": "assigned"},
    "contacted": {"pending": "contacted", "assigned": "contacted"},
    "resolve": {"pending": "resolved", "assigned": "resolved", "contacted": "resolved"},
    "escalate": {"pending": "pending", "assigned": "assigned", "contacted": "contacted"},
}


@pytest.mark.parametrize("action", sorted(ALLOWED))
@pytest.mark.parametrize("status", CALLBACK_STATUSES)
def test_state_machine_is_exactly_the_table(action: str, status: str) -> None:
    expected = ALLOWED[action].get(status)
    if expected is None:
        with pytest.raises(states.InvalidTransition) as refused:
            states.next_status(status, action)
        assert refused.value.status == 409
        assert refused.value.code == "invalid_transition"
        assert refused.value.extra["current_status"] == status
        assert status in refused.value.detail
    else:
        assert states.next_status(status, action) == expected


def test_due_at_and_overdue() -> None:
    now = datetime(2025, 3, 30, 0, 30, tzinfo=UTC)  # the night Berlin switches to summer time
    assert due_at(now, None) == now + timedelta(minutes=120)
    assert due_at(now, 30) == now + timedelta(minutes=30)
    assert due_at(now, 0) == now
    due = now + timedelta(minutes=1)
    for status in CALLBACK_STATUSES:
        assert not states.is_overdue(status, due, now)
        assert not states.is_overdue(status, due, due)
        after = due + timedelta(microseconds=1)
        assert states.is_overdue(status, due, after) == (status in ("pending", "assigned"))


# Creation -------------------------------------------------------------------------------


async def test_create_with_branch_uses_its_sla(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    await set_sla(db, salon, 30)
    before = datetime.now(UTC)
    cb = await create(
        booking,
        salon,
        branch_id=salon.branch_id,
        service_id=salon.service_id,
        staff_id=salon.staff_ids[0],
        customer_name="  Erika Muster ",
        preferred_time="morgen ab 10",
        priority="high",
        call_id="call_abc",
    )
    created, due = instant(cb["created_at"]), instant(cb["due_at"])
    assert due - created == timedelta(minutes=30)
    assert before <= created <= datetime.now(UTC)
    assert created.utcoffset() in (timedelta(hours=1), timedelta(hours=2))  # Europe/Berlin
    assert cb["phone_number"] == PHONE
    assert cb["customer_name"] == "Erika Muster"
    assert cb["customer_id"] is None
    assert (cb["branch_id"], cb["service_id"], cb["staff_id"]) == (
        salon.branch_id,
        salon.service_id,
        salon.staff_ids[0],
    )
    assert (cb["preferred_time"], cb["priority"], cb["call_id"]) == (
        "morgen ab 10",
        "high",
        "call_abc",
    )
    assert cb["status"] == "pending"
    assert cb["overdue"] is False
    assert cb["escalations"] == 0
    assert cb["assigned_to"] is None
    assert cb["assigned_at"] is cb["contacted_at"] is cb["resolved_at"] is None
    fetched = await booking.get(f"/v1/callbacks/{cb['id']}", headers=salon.headers)
    assert fetched.status_code == 200
    assert fetched.json() == cb


async def test_create_without_branch(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    cb = await create(booking, salon)  # branch SLA unset: the default 120 minutes
    assert cb["branch_id"] is None
    assert cb["priority"] == "normal"
    created, due = instant(cb["created_at"]), instant(cb["due_at"])
    assert created.utcoffset() == timedelta(0)  # no branch: UTC
    assert due - created == timedelta(minutes=120)
    await set_sla(db, salon, 45)  # the company's only branch sets the SLA
    cb = await create(booking, salon)
    assert instant(cb["due_at"]) - instant(cb["created_at"]) == timedelta(minutes=45)

    tenant = await create_tenant(db)  # a company without any branch
    response = await booking.post("/v1/callbacks", json=body(), headers=tenant.headers)
    assert response.status_code == 201, response.text
    cb = response.json()
    assert instant(cb["due_at"]) - instant(cb["created_at"]) == timedelta(minutes=120)


async def test_create_links_the_known_customer(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    other = await create_salon(db)
    async with db.transaction(salon.tenant.company_id) as session:
        customer = Customer(name="Max Mustermann", phone=PHONE)
        session.add(customer)
    cb = await create(booking, salon, phone_number="+49 170 1234567")
    assert cb["customer_id"] == customer.id
    assert cb["customer_name"] == "Max Mustermann"  # taken from the customer when not given
    named = await create(booking, salon, customer_name="Maximilian")
    assert (named["customer_id"], named["customer_name"]) == (customer.id, "Maximilian")
    # The same number in another company is another customer: not linked.
    foreign = await create(booking, other)
    assert foreign["customer_id"] is None


async def test_create_stages_callback_requested(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    cb = await create(booking, salon)
    events = await outbox(db, cb["id"])
    assert [(e.queue, e.job_name, e.status) for e in events] == [
        (NOTIFY_QUEUE, "notify", "pending")
    ]
    assert events[0].company_id == salon.tenant.company_id
    assert events[0].payload == {
        "event_type": "callback_requested",
        "callback_id": cb["id"],
        "company_id": salon.tenant.company_id,
    }


async def test_create_callback_function_for_the_agent(db: Database) -> None:
    salon = await create_salon(db)
    await set_sla(db, salon, 30)
    now = datetime(2030, 6, 3, 10, 0, 0, 123456, tzinfo=UTC)
    company_id = salon.tenant.company_id
    async with db.transaction(company_id) as session:
        cb = await create_callback(
            session,
            company_id=company_id,
            phone_number="+4917655512345",
            reason="Möchte einen Termin am Samstag",
            customer_name="Jana",
            branch_id=salon.branch_id,
            call_id="call_123",
            preferred_time="nachmittags",
            now=now,
        )
        callback_id = cb.id
    async with db.transaction(company_id, write=False) as session:
        view = await callbacks.get_view(session, callback_id)
    assert view.callback.created_at == now
    assert view.callback.due_at == now + timedelta(minutes=30)
    assert (view.callback.status, view.callback.call_id) == ("pending", "call_123")
    assert view.timezone == "Europe/Berlin"
    assert callbacks.callback_out(view, now).due_at == "2030-06-03T12:30:00.123456+02:00"
    for bad in ({"phone_number": "abc"}, {"reason": "   "}, {"preferred_time": "x" * 201}):
        args: dict[str, Any] = {"phone_number": PHONE, "reason": "r", **bad}
        async with db.transaction(company_id) as session:
            with pytest.raises(InvalidInput) as refused:
                await create_callback(session, company_id=company_id, **args)
        assert refused.value.extra["field"] == next(iter(bad))
    assert [e.payload["event_type"] for e in await outbox(db, callback_id)] == [
        "callback_requested"
    ]


# Transitions ----------------------------------------------------------------------------


async def test_assign_contact_resolve(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    cb = await create(booking, salon, branch_id=salon.branch_id)
    assigned = await act(booking, salon, cb, "assign", staff_id=salon.staff_ids[0])
    assert assigned.status_code == 200, assigned.text
    first = assigned.json()
    assert (first["status"], first["assigned_to"]) == ("assigned", salon.staff_ids[0])
    assert instant(first["assigned_at"]) >= instant(cb["created_at"])
    reassigned = (await act(booking, salon, cb, "assign", staff_id=salon.staff_ids[1])).json()
    assert (reassigned["status"], reassigned["assigned_to"]) == ("assigned", salon.staff_ids[1])
    assert instant(reassigned["assigned_at"]) >= instant(first["assigned_at"])
    contacted = (await act(booking, salon, cb, "contacted", notes="Mailbox")).json()
    assert contacted["status"] == "contacted"
    assert contacted["contact_notes"] == "Mailbox"
    assert instant(contacted["contacted_at"]) >= instant(reassigned["assigned_at"])
    resolved = await act(booking, salon, cb, "resolve", notes="Termin gebucht")
    assert resolved.status_code == 200, resolved.text
    final = resolved.json()
    assert (final["status"], final["resolution_notes"]) == ("resolved", "Termin gebucht")
    assert instant(final["resolved_at"]) >= instant(final["contacted_at"])
    assert final["overdue"] is False
    events = [e.payload["event_type"] for e in await outbox(db, cb["id"])]
    assert events == ["callback_requested", "callback_assigned", "callback_assigned"]


async def test_every_other_valid_path(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    paths: list[tuple[list[tuple[str, dict[str, Any]]], str]] = [
        ([("contacted", {})], "contacted"),  # pending -> contacted
        ([("resolve", {})], "resolved"),  # pending -> resolved
        ([("assign", {"staff_id": salon.staff_ids[0]}), ("resolve", {})], "resolved"),
    ]
    for steps, final in paths:
        cb = await create(booking, salon)
        for action, payload in steps:
            response = await act(booking, salon, cb, action, **payload)
            assert response.status_code == 200, (action, response.text)
        assert response.json()["status"] == final
    # Bodies are optional for contacted and resolve.
    cb = await create(booking, salon)
    response = await booking.post(f"/v1/callbacks/{cb['id']}/contacted", headers=salon.headers)
    assert response.status_code == 200, response.text
    assert response.json()["contact_notes"] is None


async def test_invalid_transitions_are_409(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    assign = ("assign", {"staff_id": salon.staff_ids[0]})
    escalate = ("escalate", {"reason": "Kunde ruft erneut an"})
    contacted, resolve = ("contacted", {}), ("resolve", {})
    resolved_cb = await create(booking, salon)
    assert (await act(booking, salon, resolved_cb, "resolve")).status_code == 200
    contacted_cb = await create(booking, salon)
    assert (await act(booking, salon, contacted_cb, "contacted")).status_code == 200
    expired_cb = await create(booking, salon)
    async with db.transaction(salon.tenant.company_id) as session:
        await session.execute(
            sa.update(CallbackRequest)
            .where(CallbackRequest.id == expired_cb["id"])
            .values(status="expired")
        )
    cases = [
        (resolved_cb, "resolved", [assign, contacted, resolve, escalate]),
        (contacted_cb, "contacted", [assign, contacted]),
        (expired_cb, "expired", [assign, contacted, resolve, escalate]),
    ]
    for cb, status, actions in cases:
        for action, payload in actions:
            response = await act(booking, salon, cb, action, **payload)
            assert response.status_code == 409, (status, action, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
            problem = response.json()
            assert problem["code"] == "invalid_transition"
            assert problem["current_status"] == status
            assert status in problem["detail"]
        unchanged = await booking.get(f"/v1/callbacks/{cb['id']}", headers=salon.headers)
        assert unchanged.json()["status"] == status
        assert unchanged.json()["escalations"] == 0


async def test_escalation_levels(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    cb = await create(booking, salon, branch_id=salon.branch_id)
    first = await act(booking, salon, cb, "escalate", reason="SLA verpasst")
    assert first.status_code == 200, first.text
    assert (first.json()["status"], first.json()["escalations"]) == ("pending", 1)
    await act(booking, salon, cb, "assign", staff_id=salon.staff_ids[0])
    second = await act(
        booking, salon, cb, "escalate", reason="Kunde verärgert", to=salon.staff_ids[1]
    )
    assert second.status_code == 200, second.text
    assert (second.json()["status"], second.json()["escalations"]) == ("assigned", 2)
    await act(booking, salon, cb, "contacted")
    third = await act(booking, salon, cb, "escalate", reason="Rückfrage")
    assert (third.json()["status"], third.json()["escalations"]) == ("contacted", 3)
    async with db.transaction(salon.tenant.company_id, write=False) as session:
        rows = list(
            await session.scalars(
                sa.select(CallbackEscalation)
                .where(CallbackEscalation.callback_request_id == cb["id"])
                .order_by(CallbackEscalation.level)
            )
        )
    assert [r.level for r in rows] == [1, 2, 3]
    assert [r.escalation_reason for r in rows] == ["SLA verpasst", "Kunde verärgert", "Rückfrage"]
    assert [(r.escalated_from, r.escalated_to) for r in rows[:2]] == [
        (None, None),
        (salon.staff_ids[0], salon.staff_ids[1]),
    ]
    assert all(r.escalated_at is not None for r in rows)
    escalated = [
        e.payload
        for e in await outbox(db, cb["id"])
        if e.payload["event_type"] != "callback_assigned"
    ]
    assert [(p["event_type"], p.get("level")) for p in escalated] == [
        ("callback_requested", None),
        ("callback_escalated", 1),
        ("callback_escalated", 2),
        ("callback_escalated", 3),
    ]
    assert all(p["callback_id"] == cb["id"] for p in escalated)


# Listing --------------------------------------------------------------------------------


async def test_list_filters_and_overdue(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    late = await create(booking, salon, branch_id=salon.branch_id)
    late_assigned = await create(booking, salon)
    late_resolved = await create(booking, salon)
    fresh = await create(booking, salon, branch_id=salon.branch_id)
    await act(booking, salon, late_assigned, "assign", staff_id=salon.staff_ids[0])
    await act(booking, salon, late_resolved, "resolve")
    past = datetime.now(UTC) - timedelta(hours=1)
    async with db.transaction(salon.tenant.company_id) as session:
        for cb, minutes in ((late, 30), (late_assigned, 20), (late_resolved, 40)):
            await session.execute(
                sa.update(CallbackRequest)
                .where(CallbackRequest.id == cb["id"])
                .values(due_at=past - timedelta(minutes=minutes))
            )
    listed = await booking.get("/v1/callbacks", headers=salon.headers)
    assert listed.status_code == 200
    items = listed.json()["items"]
    assert [i["id"] for i in items] == [
        late_resolved["id"],
        late["id"],
        late_assigned["id"],
        fresh["id"],
    ]  # oldest due first
    assert [i["overdue"] for i in items] == [False, True, True, False]
    overdue = await booking.get("/v1/callbacks?overdue=true", headers=salon.headers)
    assert [i["id"] for i in overdue.json()["items"]] == [late["id"], late_assigned["id"]]
    pending = await booking.get(
        "/v1/callbacks", params={"status": "pending"}, headers=salon.headers
    )
    assert [i["id"] for i in pending.json()["items"]] == [late["id"], fresh["id"]]
    in_branch = await booking.get(
        "/v1/callbacks",
        params={"branch_id": salon.branch_id, "overdue": "true"},
        headers=salon.headers,
    )
    assert [i["id"] for i in in_branch.json()["items"]] == [late["id"]]
    bad = await booking.get("/v1/callbacks?status=open", headers=salon.headers)
    assert bad.status_code == 422
    assert bad.json()["field"] == "status"


# Tenancy, auth and validation ---------------------------------------------------------------


async def test_other_company_sees_nothing(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    intruder = await create_salon(db)
    cb = await create(booking, salon, branch_id=salon.branch_id)
    assert (
        await booking.get(f"/v1/callbacks/{cb['id']}", headers=intruder.headers)
    ).status_code == 404
    for action, payload in (
        ("assign", {"staff_id": intruder.staff_ids[0]}),
        ("contacted", {}),
        ("resolve", {}),
        ("escalate", {"reason": "x"}),
    ):
        response = await act(booking, intruder, cb, action, **payload)
        assert response.status_code == 404, (action, response.text)
        assert response.json()["code"] == "not_found"
    listed = await booking.get("/v1/callbacks", headers=intruder.headers)
    assert listed.json()["items"] == []
    own = await booking.get(f"/v1/callbacks/{cb['id']}", headers=salon.headers)
    assert own.json() == cb  # untouched
    unknown = await booking.get("/v1/callbacks/does-not-exist", headers=salon.headers)
    assert unknown.status_code == 404


async def test_scopes(booking: httpx.AsyncClient, db: Database) -> None:
    for scopes, expected in ((["service"], 201), (["operator"], 201), (["agent"], 403)):
        tenant = await create_tenant(db, scopes=scopes)
        response = await booking.post("/v1/callbacks", json=body(), headers=tenant.headers)
        assert response.status_code == expected, (scopes, response.text)
    assert (await booking.get("/v1/callbacks")).status_code == 401


async def test_invalid_input_is_422_and_writes_nothing(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    other = await create_salon(db)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"phone_number": PHONE}, "reason"),
        (body(reason=""), "reason"),
        (body(reason="   "), "reason"),
        (body(reason="x" * 1001), "reason"),
        ({"reason": "r"}, "phone_number"),
        (body(phone_number="not a number"), "phone_number"),
        (body(phone_number="+49 123"), "phone_number"),
        (body(branch_id=other.branch_id), "branch_id"),
        (body(service_id=other.service_id), "service_id"),
        (body(staff_id=other.staff_ids[0]), "staff_id"),
        (body(branch_id="nope"), "branch_id"),
        (body(priority="asap"), "priority"),
        (body(preferred_time="x" * 201), "preferred_time"),
        (body(company_id=other.tenant.company_id), "company_id"),
    ]
    for payload, field in cases:
        response = await booking.post("/v1/callbacks", json=payload, headers=salon.headers)
        assert response.status_code == 422, (payload, response.text)
        problem = response.json()
        assert problem["code"] == "validation_error"
        assert problem["field"] == field, (payload, problem)
    for raw in (b"", b"{", b"[]", b"null"):
        response = await booking.post(
            "/v1/callbacks",
            content=raw,
            headers={**salon.headers, "content-type": "application/json"},
        )
        assert response.status_code == 422, (raw, response.text)
    assert await count_callbacks(db, salon.tenant.company_id) == 0

    cb = await create(booking, salon, branch_id=salon.branch_id)
    for action, payload, field in (
        ("assign", {"staff_id": other.staff_ids[0]}, "staff_id"),
        ("assign", {}, "staff_id"),
        ("escalate", {"reason": "x", "to": other.staff_ids[0]}, "to"),
        ("escalate", {}, "reason"),
        ("escalate", {"reason": "x" * 101}, "reason"),
        ("resolve", {"notes": "x" * 2001}, "notes"),
    ):
        response = await act(booking, salon, cb, action, **payload)
        assert response.status_code == 422, (action, payload, response.text)
        assert response.json()["field"] == field
    still = (await booking.get(f"/v1/callbacks/{cb['id']}", headers=salon.headers)).json()
    assert (still["status"], still["assigned_to"], still["escalations"]) == ("pending", None, 0)


async def test_concurrent_changes_serialize(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    cb = await create(booking, salon)
    escalations = await asyncio.gather(
        *(act(booking, salon, cb, "escalate", reason=f"Nr. {n}") for n in range(6))
    )
    assert [r.status_code for r in escalations] == [200] * 6
    async with db.transaction(salon.tenant.company_id, write=False) as session:
        levels = await session.scalars(
            sa.select(CallbackEscalation.level).where(
                CallbackEscalation.callback_request_id == cb["id"]
            )
        )
        assert sorted(levels) == [1, 2, 3, 4, 5, 6]
    resolves = await asyncio.gather(*(act(booking, salon, cb, "resolve") for _ in range(4)))
    assert sorted(r.status_code for r in resolves) == [200, 409, 409, 409]
