"""Operators' event API: list (filters, keyset pages), read, replay, and who sees what;
SQLite and MariaDB. Events are created through the real ingestion endpoints."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from redis.asyncio import Redis

from services.webhooks.ingest.handling import PROCESS_JOB
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.jobs.queue import WEBHOOKS_QUEUE
from shared.models import WebhookEvent
from shared.security.api_keys import issue_key
from tests.booking.agent_support import RETELL_KEY, enable_retell, signed
from tests.support.factories import Salon, create_platform_key, create_salon, create_tenant
from tests.webhooks import (
    CALCOM_SECRET,
    PLATFORM_RETELL_KEY,
    AppClient,
    calcom_headers,
    load_json,
    queued_job,
    set_calcom_secret,
)

CREATED = load_json("calcom", "webhook-BOOKING_CREATED.example.json")
ENDED = load_json("retell", "webhook_call_ended.constructed.json")
EVENTS = "/v1/webhooks/events"


@dataclass(frozen=True)
class Company:
    salon: Salon
    operator: dict[str, str]  # headers of a key with the operator scope

    @property
    def id(self) -> str:
        return self.salon.tenant.company_id


async def make_company(db: Database) -> Company:
    salon = await create_salon(db)
    await enable_retell(db, salon)
    await set_calcom_secret(db, salon.tenant.company_id, CALCOM_SECRET)
    operator = await create_tenant_key(db, salon.tenant.company_id, ["operator"])
    return Company(salon, {"Authorization": f"Bearer {operator}"})


async def create_tenant_key(db: Database, company_id: str, scopes: list[str]) -> str:
    async with db.transaction(SYSTEM) as session:
        issued = issue_key(session, company_id=company_id, name="ops", scopes=scopes)
    return issued.plaintext


async def calcom_event(client: httpx.AsyncClient, company: Company, uid: str) -> str:
    body = json.loads(json.dumps(CREATED))
    body["payload"]["uid"] = uid
    raw = json.dumps(body).encode()
    answer = await client.post(
        f"/v1/webhooks/calcom/{company.id}", content=raw, headers=calcom_headers(raw)
    )
    assert answer.status_code == 202, answer.text
    event_id: str = answer.json()["event_id"]
    return event_id


async def retell_event(
    client: httpx.AsyncClient, call_id: str, company: Company | None, key: str
) -> str:
    body = json.loads(json.dumps(ENDED))
    body["call"]["call_id"] = call_id
    if company is not None:
        body["call"]["to_number"] = company.salon.phone_number
    raw, headers = signed(body, key)
    answer = await client.post("/v1/webhooks/retell", content=raw, headers=headers)
    assert answer.status_code == 202, answer.text
    event_id: str = answer.json()["event_id"]
    return event_id


async def set_state(db: Database, event_id: str, status: str, error: str | None = None) -> None:
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            sa.update(WebhookEvent)
            .where(WebhookEvent.id == event_id)
            .values(status=status, error_message=error, attempts=3)
        )


async def row(db: Database, event_id: str) -> WebhookEvent:
    async with db.transaction(SYSTEM, write=False) as session:
        found = await session.get(WebhookEvent, event_id)
    assert found is not None
    return found


@pytest.fixture
async def company(db: Database) -> Company:
    return await make_company(db)


async def test_list_is_newest_first_filters_and_pages_without_gaps(
    client: AppClient, db: Database, company: Company
) -> None:
    ids = [await calcom_event(client, company, f"uid-list-{n}") for n in range(5)]
    ids += [await retell_event(client, f"call-list-{n}", company, RETELL_KEY) for n in range(2)]
    await set_state(db, ids[0], "failed", "Cal.com answered 500")
    await set_state(db, ids[1], "processed")
    await set_state(db, ids[2], "ignored", "unknown event type id 7")
    await set_state(db, ids[4], "processing")
    newest_first = list(reversed(ids))

    everything = await client.get(EVENTS, headers=company.operator)
    assert everything.status_code == 200
    items = everything.json()["items"]
    assert [i["id"] for i in items] == newest_first
    assert everything.json()["next_cursor"] is None
    failed = next(i for i in items if i["id"] == ids[0])
    assert failed == {
        "id": ids[0],
        "source": "calcom",
        "event_type": "BOOKING_CREATED",
        "status": "failed",
        "attempts": 3,
        "error_message": "Cal.com answered 500",
        "created_at": failed["created_at"],
        "processed_at": None,
        "correlation_id": failed["correlation_id"],
    }
    assert failed["created_at"].endswith("+00:00")

    async def listed(**params: Any) -> list[str]:
        answer = await client.get(EVENTS, params=params, headers=company.operator)
        assert answer.status_code == 200, answer.text
        return [i["id"] for i in answer.json()["items"]]

    assert await listed(status="failed") == [ids[0]]
    assert await listed(status="ignored") == [ids[2]]
    assert await listed(status="pending") == [ids[6], ids[5], ids[3]]
    assert await listed(status="processing") == [ids[4]]
    assert await listed(source="retell") == [ids[6], ids[5]]
    assert await listed(source="calcom", status="processed") == [ids[1]]
    retell_item = await client.get(EVENTS, params={"source": "retell"}, headers=company.operator)
    assert retell_item.json()["items"][0]["correlation_id"] == "call-list-1"

    pages: list[list[str]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(EVENTS, params=params, headers=company.operator)).json()
        pages.append([i["id"] for i in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [2, 2, 2, 1]
    assert [i for p in pages for i in p] == newest_first


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "done"}, "status"),
        ({"source": "stripe"}, "source"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "fA"}, "cursor"),
        ({"cursor": "x" * 201}, "cursor"),
    ],
    ids=lambda v: str(v)[:20],
)
async def test_invalid_filters_are_422_problems(
    client: AppClient, company: Company, params: dict[str, Any], field: str
) -> None:
    answer = await client.get(EVENTS, params=params, headers=company.operator)
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["field"] == field


async def test_detail_shows_the_payload_and_hides_other_companies(
    client: AppClient, db: Database, company: Company
) -> None:
    other = await make_company(db)
    mine = await calcom_event(client, company, "uid-detail")
    theirs = await calcom_event(client, other, "uid-detail")

    detail = await client.get(f"{EVENTS}/{mine}", headers=company.operator)
    assert detail.status_code == 200
    body = detail.json()
    assert (body["id"], body["company_id"], body["status"]) == (mine, company.id, "pending")
    assert body["payload"]["payload"]["uid"] == "uid-detail"
    assert body["payload"]["triggerEvent"] == "BOOKING_CREATED"

    for path in (f"{EVENTS}/{theirs}", f"{EVENTS}/no-such-event", f"{EVENTS}/{'x' * 37}"):
        hidden = await client.get(path, headers=company.operator)
        assert hidden.status_code in (404, 422), path
        assert hidden.headers["content-type"] == "application/problem+json"
    assert (await client.get(f"{EVENTS}/{theirs}", headers=company.operator)).status_code == 404
    listed = (await client.get(EVENTS, headers=company.operator)).json()["items"]
    assert [i["id"] for i in listed] == [mine]


async def test_replay_puts_finished_events_back_and_refuses_ones_in_flight(
    client: AppClient, db: Database, redis: Redis, company: Company
) -> None:
    ids = [await calcom_event(client, company, f"uid-replay-{n}") for n in range(4)]
    await set_state(db, ids[0], "failed", "Cal.com timed out")
    await set_state(db, ids[1], "processed")
    await set_state(db, ids[2], "ignored", "unknown organizer")
    await set_state(db, ids[3], "processing")
    await redis.delete(*(f"arq:job:webhook:{i}" for i in ids))
    await redis.zrem(WEBHOOKS_QUEUE, *(f"webhook:{i}" for i in ids))

    for event_id in ids[:3]:
        answer = await client.post(f"{EVENTS}/{event_id}/replay", headers=company.operator)
        assert (answer.status_code, answer.json()) == (
            202,
            {"status": "accepted", "event_id": event_id},
        )
        replayed = await row(db, event_id)
        assert (replayed.status, replayed.error_message, replayed.processed_at) == (
            "pending",
            None,
            None,
        )
        assert replayed.attempts == 3  # the history stays
        assert await queued_job(redis, event_id) == (PROCESS_JOB, (event_id,))

    for event_id, status in ((ids[0], "pending"), (ids[3], "processing")):
        refused = await client.post(f"{EVENTS}/{event_id}/replay", headers=company.operator)
        assert refused.status_code == 409
        assert refused.json()["code"] == "conflict"
        assert refused.json()["event_status"] == status
    assert await queued_job(redis, ids[3]) is None
    assert (await row(db, ids[3])).status == "processing"


async def test_two_operators_replaying_at_once_enqueue_it_once(
    client: AppClient, db: Database, company: Company
) -> None:
    event_id = await calcom_event(client, company, "uid-replay-race")
    await set_state(db, event_id, "failed", "boom")
    answers = await asyncio.gather(
        *(client.post(f"{EVENTS}/{event_id}/replay", headers=company.operator) for _ in range(5))
    )
    assert sorted(a.status_code for a in answers) == [202, 409, 409, 409, 409]


async def test_replay_of_unknown_or_other_companys_event_is_404_and_changes_nothing(
    client: AppClient, db: Database, company: Company
) -> None:
    other = await make_company(db)
    theirs = await calcom_event(client, other, "uid-theirs")
    await set_state(db, theirs, "failed", "boom")

    for event_id in (theirs, "00000000-0000-0000-0000-000000000000"):
        answer = await client.post(f"{EVENTS}/{event_id}/replay", headers=company.operator)
        assert answer.status_code == 404
        assert answer.json()["code"] == "not_found"
    untouched = await row(db, theirs)
    assert (untouched.status, untouched.error_message) == ("failed", "boom")


async def test_platform_key_sees_a_named_company_or_else_the_unattributed_events(
    client: AppClient, db: Database, company: Company
) -> None:
    platform = {"Authorization": f"Bearer {await create_platform_key(db, ['operator'])}"}
    mine = await calcom_event(client, company, "uid-platform")
    orphan = await retell_event(client, "call-orphan-platform", None, PLATFORM_RETELL_KEY)
    await set_state(db, orphan, "ignored", "no company for this call")

    named = await client.get(EVENTS, headers={**platform, "X-Company-ID": company.id})
    assert [i["id"] for i in named.json()["items"]] == [mine]

    unattributed = (await client.get(EVENTS, headers=platform)).json()["items"]
    assert orphan in [i["id"] for i in unattributed]
    assert mine not in [i["id"] for i in unattributed]
    detail = await client.get(f"{EVENTS}/{orphan}", headers=platform)
    assert (detail.status_code, detail.json()["company_id"]) == (200, None)
    assert (await client.get(f"{EVENTS}/{mine}", headers=platform)).status_code == 404

    # A company's key never sees an unattributed event.
    assert (await client.get(f"{EVENTS}/{orphan}", headers=company.operator)).status_code == 404
    replay = await client.post(f"{EVENTS}/{orphan}/replay", headers=platform)
    assert replay.status_code == 202
    assert (await row(db, orphan)).status == "pending"


async def test_events_api_needs_a_key_with_the_operator_scope(
    client: AppClient, db: Database, company: Company
) -> None:
    agent = await create_tenant_key(db, company.id, ["agent"])
    admin = await create_tenant_key(db, company.id, ["admin"])
    platform_agent = await create_platform_key(db, ["agent"])
    platform_operator = await create_platform_key(db, ["operator"])
    cases = [
        ({"Authorization": f"Basic {platform_operator}"}, 401),
        ({}, 401),
        ({"Authorization": "Bearer ak_nope"}, 401),
        ({"Authorization": f"Bearer {agent}"}, 403),
        ({"Authorization": f"Bearer {platform_agent}"}, 403),
        ({"Authorization": f"Bearer {admin}"}, 200),
    ]
    for headers, status in cases:
        answer = await client.get(EVENTS, headers=headers)
        assert answer.status_code == status, (headers, answer.text)
        if status >= 400:
            assert answer.headers["content-type"] == "application/problem+json"
    unknown = {"Authorization": f"Bearer {await create_platform_key(db, ['operator'])}"}
    answer = await client.get(EVENTS, headers={**unknown, "X-Company-ID": "no-such-company"})
    assert answer.status_code == 404


async def test_a_tenant_created_without_events_lists_nothing(
    client: AppClient, db: Database
) -> None:
    tenant = await create_tenant(db, scopes=["operator"])
    answer = await client.get(EVENTS, headers=tenant.headers)
    assert answer.json() == {"items": [], "next_cursor": None}
