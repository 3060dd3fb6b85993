"""The callback escalation cron on a controlled clock, the branch's escalation chain in the
admin API, and the overdue list's query plan."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from arq.connections import create_pool

from services.booking.callbacks import escalation as callback_escalation
from services.booking.callbacks import service as callbacks
from services.booking.callbacks import states
from services.booking.callbacks.escalation import escalate_overdue
from services.booking.jobs import escalate_overdue_callbacks
from services.booking.worker import WorkerSettings
from shared.appointments.callbacks import DEFAULT_SLA_MINUTES, create_callback
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.db.types import utcnow
from shared.jobs.outbox import job_id
from shared.jobs.queue import NOTIFY_QUEUE, redis_settings
from shared.models import Branch, CallbackEscalation, CallbackRequest, OutboxEvent, Staff
from tests.bench.callbacks import explain, overdue_list, seed
from tests.support.factories import Salon, create_salon

DUE = datetime(2030, 6, 3, 8, 0, tzinfo=UTC)
CREATED = DUE - timedelta(minutes=DEFAULT_SLA_MINUTES)  # the branch sets no SLA
MINUTE = timedelta(minutes=1)
ADMIN_BRANCHES = "/v1/admin/branches"


@pytest.fixture(autouse=True)
async def nothing_else_due(db: Database) -> None:
    """The cron looks at every company: callbacks of earlier tests must not be due here."""
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            sa.update(CallbackRequest)
            .where(CallbackRequest.next_escalation_at.is_not(None))
            .values(next_escalation_at=None)
        )


async def new_callback(
    db: Database, salon: Salon, *, branch: bool = True, created: datetime = CREATED
) -> str:
    company_id = salon.tenant.company_id
    async with db.transaction(company_id) as session:
        cb = await create_callback(
            session,
            company_id=company_id,
            phone_number="+491701234567",
            reason="Rückruf wegen Termin",
            branch_id=salon.branch_id if branch else None,
            now=created,
        )
    return cb.id


async def set_chain(db: Database, salon: Salon, *steps: tuple[str, int]) -> None:
    chain = [{"staff_id": staff_id, "after_minutes": after} for staff_id, after in steps]
    async with db.transaction(salon.tenant.company_id) as session:
        await session.execute(
            sa.update(Branch)
            .where(Branch.id == salon.branch_id)
            .values(callback_escalation_chain=chain or None)
        )


async def escalations(db: Database, callback_id: str) -> list[tuple[Any, ...]]:
    """(level, reason, escalated_from, escalated_to, escalated_at) by level."""
    async with db.transaction(SYSTEM, write=False) as session:
        rows = await session.execute(
            sa.select(
                CallbackEscalation.level,
                CallbackEscalation.escalation_reason,
                CallbackEscalation.escalated_from,
                CallbackEscalation.escalated_to,
                CallbackEscalation.escalated_at,
            )
            .where(CallbackEscalation.callback_request_id == callback_id)
            .order_by(CallbackEscalation.level)
        )
        return [tuple(row) for row in rows]


async def notifications(db: Database, callback_id: str) -> list[dict[str, Any]]:
    """Payloads of the staged notify jobs of escalations (level set), in level order."""
    async with db.transaction(SYSTEM, write=False) as session:
        rows = await session.scalars(
            sa.select(OutboxEvent).where(
                OutboxEvent.aggregate_id == callback_id, OutboxEvent.queue == NOTIFY_QUEUE
            )
        )
        payloads = [row.payload for row in rows if "level" in row.payload]
    return sorted(payloads, key=lambda p: p["level"])


async def next_look(db: Database, callback_id: str) -> datetime | None:
    async with db.transaction(SYSTEM, write=False) as session:
        when: datetime | None = await session.scalar(
            sa.select(CallbackRequest.next_escalation_at).where(CallbackRequest.id == callback_id)
        )
        return when


async def escalation_ids(db: Database, callback_id: str) -> dict[int, str]:
    async with db.transaction(SYSTEM, write=False) as session:
        rows = await session.execute(
            sa.select(CallbackEscalation.level, CallbackEscalation.id).where(
                CallbackEscalation.callback_request_id == callback_id
            )
        )
        return {level: id_ for level, id_ in rows}


def payload(
    salon: Salon, callback_id: str, event: str, level: int, to: str | None, escalation_id: str
) -> dict[str, Any]:
    return {
        "event_type": event,
        "callback_id": callback_id,
        "company_id": salon.tenant.company_id,
        "escalation_id": escalation_id,
        "level": level,
        "escalated_to": to,
    }


# Pure core ------------------------------------------------------------------------------


def test_escalation_time() -> None:
    chain = (states.EscalationStep("a", 15), states.EscalationStep("b", 60))
    assert states.escalation_time(DUE, (), 1) == DUE
    assert states.escalation_time(DUE, (), 2) is None
    assert states.escalation_time(DUE, chain, 1) == DUE + 15 * MINUTE
    assert states.escalation_time(DUE, chain, 2) == DUE + 60 * MINUTE
    assert states.escalation_time(DUE, chain, 3) is None
    assert states.parse_chain(None) == ()
    assert states.parse_chain([{"staff_id": "a", "after_minutes": 15}]) == chain[:1]
    assert states.parse_chain([{"staff_id": "a"}]) == ()  # malformed: no chain


# The schedule on the callback ---------------------------------------------------------------


async def test_next_escalation_at_follows_the_state(db: Database) -> None:
    salon = await create_salon(db)
    company_id = salon.tenant.company_id
    ids = [await new_callback(db, salon) for _ in range(3)]
    assert [await next_look(db, i) for i in ids] == [DUE, DUE, DUE]
    async with db.transaction(company_id) as session:
        await callbacks.assign(session, ids[0], salon.staff_ids[0], now=CREATED)
        await callbacks.mark_contacted(session, ids[1], now=CREATED)
        await callbacks.resolve(session, ids[2], now=CREATED)
    assert [await next_look(db, i) for i in ids] == [DUE, None, None]
    async with db.transaction(company_id) as session:  # escalating a contacted one
        await callbacks.escalate(session, ids[1], "Kunde ruft erneut an", now=CREATED)
    assert await next_look(db, ids[1]) is None


# The cron -------------------------------------------------------------------------------


async def test_not_before_due_then_level_1_once(db: Database) -> None:
    salon = await create_salon(db)
    cb = await new_callback(db, salon)
    assert await escalate_overdue(db, now=DUE - timedelta(seconds=1)) == 0
    assert await escalations(db, cb) == []
    assert await next_look(db, cb) == DUE
    assert await escalate_overdue(db, now=DUE) == 1
    assert await escalations(db, cb) == [(1, "overdue", None, None, DUE)]
    assert await next_look(db, cb) is None  # no chain: level 1 is the last
    assert await escalate_overdue(db, now=DUE) == 0  # once per level
    assert await escalate_overdue(db, now=DUE + timedelta(days=1)) == 0
    assert len(await escalations(db, cb)) == 1
    ids = await escalation_ids(db, cb)
    assert await notifications(db, cb) == [payload(salon, cb, "callback_overdue", 1, None, ids[1])]


async def test_a_two_step_chain(db: Database) -> None:
    salon = await create_salon(db)
    anna, ben = salon.staff_ids
    await set_chain(db, salon, (anna, 0), (ben, 60))
    cb = await new_callback(db, salon)
    async with db.transaction(salon.tenant.company_id) as session:
        await callbacks.assign(session, cb, ben, now=CREATED)
    assert await escalate_overdue(db, now=DUE) == 1
    assert await escalations(db, cb) == [(1, "overdue", ben, anna, DUE)]
    assert await next_look(db, cb) == DUE + 60 * MINUTE
    assert await escalate_overdue(db, now=DUE + 59 * MINUTE) == 0
    assert await escalate_overdue(db, now=DUE + 60 * MINUTE) == 1
    assert await next_look(db, cb) is None
    assert await escalate_overdue(db, now=DUE + timedelta(days=1)) == 0
    assert await escalations(db, cb) == [
        (1, "overdue", ben, anna, DUE),
        (2, "sla_escalation", ben, ben, DUE + 60 * MINUTE),
    ]
    ids = await escalation_ids(db, cb)
    assert await notifications(db, cb) == [
        payload(salon, cb, "callback_overdue", 1, anna, ids[1]),
        payload(salon, cb, "callback_escalated", 2, ben, ids[2]),
    ]


async def test_the_first_step_may_wait_and_a_changed_chain_is_followed(db: Database) -> None:
    salon = await create_salon(db)
    anna, ben = salon.staff_ids
    await set_chain(db, salon, (anna, 10), (ben, 60))
    cb = await new_callback(db, salon)
    # Looked at from the due time on, but level 1 waits for its step's 10 minutes.
    assert await escalate_overdue(db, now=DUE) == 0
    assert await next_look(db, cb) == DUE + 10 * MINUTE
    assert await escalate_overdue(db, now=DUE + 10 * MINUTE) == 1
    await set_chain(db, salon, (anna, 10), (ben, 90))  # the branch moves step 2 later
    assert await escalate_overdue(db, now=DUE + 60 * MINUTE) == 0
    assert await next_look(db, cb) == DUE + 90 * MINUTE
    assert await escalate_overdue(db, now=DUE + 90 * MINUTE) == 1
    async with db.transaction(SYSTEM) as session:  # a schedule left from a longer chain
        await session.execute(
            sa.update(CallbackRequest)
            .where(CallbackRequest.id == cb)
            .values(next_escalation_at=DUE + 120 * MINUTE)
        )
    assert await escalate_overdue(db, now=DUE + 200 * MINUTE) == 0  # no level 3: none left
    assert await next_look(db, cb) is None
    assert [e[0] for e in await escalations(db, cb)] == [1, 2]


async def test_contacted_and_resolved_never_escalate(db: Database) -> None:
    salon = await create_salon(db)
    await set_chain(db, salon, (salon.staff_ids[0], 0))
    contacted, resolved, assigned = [await new_callback(db, salon) for _ in range(3)]
    async with db.transaction(salon.tenant.company_id) as session:
        await callbacks.mark_contacted(session, contacted, now=CREATED)
        await callbacks.resolve(session, resolved, now=CREATED)
        await callbacks.assign(session, assigned, salon.staff_ids[1], now=CREATED)
    assert await escalate_overdue(db, now=DUE + timedelta(days=1)) == 1
    assert await escalations(db, contacted) == []
    assert await escalations(db, resolved) == []
    assert [e[0] for e in await escalations(db, assigned)] == [1]
    # A closed callback still scheduled (written around the API) is dropped, not escalated.
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            sa.update(CallbackRequest)
            .where(CallbackRequest.id == resolved)
            .values(next_escalation_at=DUE)
        )
    async with db.transaction(salon.tenant.company_id) as session:
        assert await callback_escalation.escalate_callback(session, resolved, DUE) is None
    assert await next_look(db, resolved) is None
    assert await escalations(db, resolved) == []


async def test_a_callback_without_branch_follows_the_first_branch(db: Database) -> None:
    salon = await create_salon(db)
    await set_chain(db, salon, (salon.staff_ids[1], 0), (salon.staff_ids[0], 30))
    cb = await new_callback(db, salon, branch=False)
    assert await escalate_overdue(db, now=DUE) == 1
    assert await escalations(db, cb) == [(1, "overdue", None, salon.staff_ids[1], DUE)]
    assert await next_look(db, cb) == DUE + 30 * MINUTE


async def test_concurrent_runs_write_one_row_per_level(db: Database) -> None:
    salon = await create_salon(db)
    anna, ben = salon.staff_ids
    await set_chain(db, salon, (anna, 0), (ben, 60))
    ids = [await new_callback(db, salon) for _ in range(6)]
    for now in (DUE, DUE + 60 * MINUTE):
        written = await asyncio.gather(*(escalate_overdue(db, now=now) for _ in range(3)))
        assert sum(written) == len(ids)
    for cb in ids:
        assert [(e[0], e[3]) for e in await escalations(db, cb)] == [(1, anna), (2, ben)]
        assert [p["level"] for p in await notifications(db, cb)] == [1, 2]


async def test_batches_go_oldest_first(db: Database) -> None:
    salon = await create_salon(db)
    late = await new_callback(db, salon, created=CREATED + MINUTE)
    early = await new_callback(db, salon)
    assert await escalate_overdue(db, now=DUE + MINUTE, batch=1) == 1
    assert len(await escalations(db, early)) == 1
    assert await escalations(db, late) == []
    assert await escalate_overdue(db, now=DUE + MINUTE, batch=1) == 1
    assert len(await escalations(db, late)) == 1


async def test_a_manual_escalation_then_the_cron_goes_on(db: Database) -> None:
    salon = await create_salon(db)
    anna, ben = salon.staff_ids
    await set_chain(db, salon, (anna, 0), (ben, 60), (anna, 120))
    cb = await new_callback(db, salon)
    async with db.transaction(salon.tenant.company_id) as session:
        await callbacks.escalate(session, cb, "Kunde verärgert", to=ben, now=DUE - 30 * MINUTE)
    assert await next_look(db, cb) == DUE + 60 * MINUTE  # level 1 is taken: level 2 next
    assert await escalate_overdue(db, now=DUE) == 0
    assert await escalate_overdue(db, now=DUE + 60 * MINUTE) == 1
    async with db.transaction(salon.tenant.company_id) as session:
        await callbacks.escalate(session, cb, "Chefsache", now=DUE + 61 * MINUTE)
    assert await next_look(db, cb) is None  # level 3 was the chain's last
    assert await escalate_overdue(db, now=DUE + timedelta(days=1)) == 0
    assert await escalations(db, cb) == [
        (1, "Kunde verärgert", None, ben, DUE - 30 * MINUTE),
        (2, "sla_escalation", None, ben, DUE + 60 * MINUTE),
        (3, "Chefsache", None, None, DUE + 61 * MINUTE),
    ]
    ids = await escalation_ids(db, cb)
    assert await notifications(db, cb) == [
        payload(salon, cb, "callback_escalated", 1, ben, ids[1]),
        payload(salon, cb, "callback_escalated", 2, ben, ids[2]),
        payload(salon, cb, "callback_escalated", 3, None, ids[3]),
    ]


async def test_a_level_taken_meanwhile_skips_only_that_callback(db: Database) -> None:
    salon = await create_salon(db)
    await set_chain(db, salon, (salon.staff_ids[0], 0), (salon.staff_ids[1], 1))
    clashing, fine = await new_callback(db, salon), await new_callback(db, salon)
    # Level 2 exists without level 1 (only a hand-made row can do that): the cron computes
    # level 1 + 1 = 2 for it, the unique key refuses, and the other callback still goes.
    async with db.transaction(salon.tenant.company_id) as session:
        session.add(
            CallbackEscalation(
                callback_request_id=clashing,
                escalation_reason="manuell",
                level=2,
                escalated_at=CREATED,
            )
        )
    # Ordered by next look: the clashing one first.
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            sa.update(CallbackRequest)
            .where(CallbackRequest.id == clashing)
            .values(next_escalation_at=DUE - MINUTE)
        )
    assert await escalate_overdue(db, now=DUE + MINUTE) == 1
    assert [e[0] for e in await escalations(db, fine)] == [1]
    assert [e[0] for e in await escalations(db, clashing)] == [2]
    assert await next_look(db, clashing) == DUE - MINUTE  # untouched: rolled back
    assert await notifications(db, clashing) == []


async def test_the_worker_job_enqueues_the_notifications(db: Database, settings: Settings) -> None:
    salon = await create_salon(db)
    cb = await new_callback(db, salon, created=utcnow() - timedelta(hours=3))
    pool = await create_pool(redis_settings(settings))
    try:
        assert await escalate_overdue_callbacks({"db": db, "redis": pool}) == 1
        async with db.transaction(SYSTEM, write=False) as session:
            events = list(
                await session.scalars(sa.select(OutboxEvent).where(OutboxEvent.aggregate_id == cb))
            )
        staged = {e.payload["event_type"]: e.id for e in events}
        assert sorted(staged) == ["callback_overdue", "callback_requested"]
        assert await pool.zscore(NOTIFY_QUEUE, job_id(staged["callback_overdue"])) is not None
        # Created outside a request: nobody enqueued this one (the sweeper would).
        assert await pool.zscore(NOTIFY_QUEUE, job_id(staged["callback_requested"])) is None
    finally:
        await pool.aclose()
    crons = {job.name: job for job in WorkerSettings.cron_jobs}  # type: ignore[attr-defined]
    cron = crons["cron:escalate_overdue_callbacks"]
    assert (cron.second, cron.minute, cron.unique) == ({30}, None, True)


# Admin: the branch's escalation chain ---------------------------------------------------------


async def test_admin_chain_round_trip(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    anna, ben = salon.staff_ids
    chain = [{"staff_id": anna, "after_minutes": 0}, {"staff_id": ben, "after_minutes": 60}]
    created = await booking.post(
        ADMIN_BRANCHES,
        json={"name": "Nord", "timezone": "Europe/Berlin", "callback_escalation_chain": chain},
        headers=salon.headers,
    )
    assert created.status_code == 201, created.text
    assert created.json()["callback_escalation_chain"] == chain
    url = f"{ADMIN_BRANCHES}/{created.json()['id']}"
    fetched = await booking.get(url, headers=salon.headers)
    assert fetched.json()["callback_escalation_chain"] == chain
    longer = [*chain, {"staff_id": anna, "after_minutes": 10080}]
    patched = await booking.patch(
        url, json={"callback_escalation_chain": longer}, headers=salon.headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["callback_escalation_chain"] == longer
    # A staff member leaving later does not block other changes of the branch ...
    async with db.transaction(salon.tenant.company_id) as session:
        await session.execute(sa.update(Staff).where(Staff.id == ben).values(active=False))
    renamed = await booking.patch(url, json={"name": "Nordost"}, headers=salon.headers)
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["callback_escalation_chain"] == longer
    # ... but a chain sent anew must name active staff.
    again = await booking.patch(
        url, json={"callback_escalation_chain": chain}, headers=salon.headers
    )
    assert again.status_code == 422
    assert again.json()["field"] == "callback_escalation_chain[1].staff_id"
    cleared = await booking.patch(
        url, json={"callback_escalation_chain": None}, headers=salon.headers
    )
    assert cleared.json()["callback_escalation_chain"] is None
    async with db.transaction(salon.tenant.company_id, write=False) as session:
        stored = await session.scalar(
            sa.select(Branch.callback_escalation_chain).where(Branch.id == created.json()["id"])
        )
    assert stored is None
    plain = await booking.get(f"{ADMIN_BRANCHES}/{salon.branch_id}", headers=salon.headers)
    assert plain.json()["callback_escalation_chain"] is None


async def test_admin_chain_validation(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    other = await create_salon(db)
    anna, ben = salon.staff_ids

    def step(staff_id: Any = anna, after: Any = 0, **extra: Any) -> dict[str, Any]:
        return {"staff_id": staff_id, "after_minutes": after, **extra}

    cases: list[tuple[Any, str]] = [
        ([step(anna, n) for n in range(11)], "callback_escalation_chain"),
        ("Anna", "callback_escalation_chain"),
        ([step(), step(ben, 0)], "callback_escalation_chain[1].after_minutes"),
        ([step(), step(ben, 30), step(anna, 20)], "callback_escalation_chain[2].after_minutes"),
        ([step(after=-1)], "callback_escalation_chain[0].after_minutes"),
        ([step(), step(after=10081)], "callback_escalation_chain[1].after_minutes"),
        ([step(after="5")], "callback_escalation_chain[0].after_minutes"),
        ([step(after=1.5)], "callback_escalation_chain[0].after_minutes"),
        ([step(after=True)], "callback_escalation_chain[0].after_minutes"),
        ([{"after_minutes": 0}], "callback_escalation_chain[0].staff_id"),
        ([step(staff_id="")], "callback_escalation_chain[0].staff_id"),
        ([step(role="boss")], "callback_escalation_chain[0].role"),
        ([step(), "Ben"], "callback_escalation_chain[1]"),
        ([step(), step(other.staff_ids[0], 5)], "callback_escalation_chain[1].staff_id"),
        ([step(staff_id="nobody")], "callback_escalation_chain[0].staff_id"),
    ]
    for n, (chain, field) in enumerate(cases):
        body = {"name": f"Filiale {n}", "timezone": "Europe/Berlin"}
        created = await booking.post(
            ADMIN_BRANCHES,
            json={**body, "callback_escalation_chain": chain},
            headers=salon.headers,
        )
        patched = await booking.patch(
            f"{ADMIN_BRANCHES}/{salon.branch_id}",
            json={"callback_escalation_chain": chain},
            headers=salon.headers,
        )
        for response in (created, patched):
            assert response.status_code == 422, (chain, response.text)
            problem = response.json()
            assert problem["code"] == "validation_error"
            assert problem["field"] == field, (chain, problem)
            assert field in [e["field"] for e in problem["errors"]]
    async with db.transaction(salon.tenant.company_id) as session:
        await session.execute(sa.update(Staff).where(Staff.id == ben).values(active=False))
    inactive = await booking.patch(
        f"{ADMIN_BRANCHES}/{salon.branch_id}",
        json={"callback_escalation_chain": [step(), step(ben, 5)]},
        headers=salon.headers,
    )
    assert inactive.status_code == 422
    assert inactive.json()["field"] == "callback_escalation_chain[1].staff_id"
    listed = await booking.get(ADMIN_BRANCHES, headers=salon.headers)
    assert [b["name"] for b in listed.json()["items"]] == ["Mitte"]  # nothing was written
    assert listed.json()["items"][0]["callback_escalation_chain"] is None


# The overdue list ---------------------------------------------------------------------------


async def test_overdue_list_uses_the_index(db: Database, backend: str) -> None:
    now = datetime(2031, 1, 15, 12, 0, tzinfo=UTC)
    company_id = await seed(db, now, rows=3000, branches=5)
    async with db.transaction(company_id, write=False) as session:
        expected = list(
            await session.scalars(
                sa.select(CallbackRequest.id)
                .where(
                    CallbackRequest.status.in_(states.OVERDUE_STATUSES),
                    CallbackRequest.due_at < now,
                )
                .order_by(CallbackRequest.due_at, CallbackRequest.id)
            )
        )
        listed = await callbacks.list_views(session, overdue=True, now=now, limit=50)
        assert await callbacks.list_views(session, status="resolved", overdue=True, now=now) == []
        everything = await callbacks.list_views(session, now=now, limit=500)
        all_ids = list(
            await session.scalars(
                sa.select(CallbackRequest.id)
                .order_by(CallbackRequest.due_at, CallbackRequest.id)
                .limit(500)
            )
        )
    assert len(expected) > 50
    assert [v.callback.id for v in listed] == expected[:50]
    assert all(callbacks.callback_out(v, now).overdue for v in listed)
    assert [v.callback.id for v in everything] == all_ids
    other = await create_salon(db)
    async with db.transaction(other.tenant.company_id, write=False) as session:
        assert await callbacks.list_views(session, overdue=True, now=now) == []
    if backend != "mysql":
        return  # the plan is MariaDB's
    plan = await explain(db, company_id, overdue_list(now))
    reads = [row for row in plan if row["table"] == "callback_requests"]
    assert reads, plan
    assert {row["key"] for row in reads} == {"ix_callback_requests_status_due", "PRIMARY"}, plan
    ranges = [row for row in reads if row["key"] == "ix_callback_requests_status_due"]
    assert len(ranges) == len(states.OVERDUE_STATUSES), plan
    for row in ranges:  # read in index order: no sort of the overdue rows themselves
        assert row["type"] == "range", row
        assert "filesort" not in (row["Extra"] or ""), row
    assert all(row["type"] == "eq_ref" for row in reads if row["key"] == "PRIMARY"), plan
