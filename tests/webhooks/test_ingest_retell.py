"""`POST /v1/webhooks/retell`: X-Retell-Signature (5-minute window) on the raw bytes, the
tenant from the called number, one row per `event:call_id`; SQLite and MariaDB."""

from __future__ import annotations

import asyncio
import copy
import uuid
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from services.webhooks.ingest.handling import PROCESS_JOB
from shared.db.engine import Database
from shared.integrations.retell import signature as retell
from tests.booking.agent_support import RETELL_KEY, enable_retell, signed
from tests.support.factories import Salon, create_salon
from tests.webhooks import (
    PLATFORM_RETELL_KEY,
    events_of,
    load_json,
    queued_job,
)

ENDED = load_json("retell", "webhook_call_ended.constructed.json")
ANALYZED = load_json("retell", "webhook_call_analyzed.constructed.json")
UNKNOWN_NUMBER = "+12137771235"  # the contract payloads' to_number: no company has it


@pytest.fixture
async def salon(db: Database) -> Salon:
    created = await create_salon(db)
    await enable_retell(db, created)
    return created


def event_for(
    source: dict[str, Any], salon: Salon | None, call_id: str | None = None
) -> dict[str, Any]:
    """A contract payload with a fresh call id, called on the salon's number (if any)."""
    body = copy.deepcopy(source)
    body["call"]["call_id"] = call_id or f"call_{uuid.uuid4().hex}"
    if salon is not None:
        body["call"]["to_number"] = salon.phone_number
    return body


async def post(
    client: httpx.AsyncClient, body: dict[str, Any] | bytes, key: str = RETELL_KEY, **kw: Any
) -> httpx.Response:
    raw, headers = signed(body, key, **kw)
    return await client.post("/v1/webhooks/retell", content=raw, headers=headers)


async def test_contract_events_are_stored_once_for_the_called_company(
    client: httpx.AsyncClient, db: Database, redis: Redis, salon: Salon
) -> None:
    call_id = f"call_{uuid.uuid4().hex}"
    ended = event_for(ENDED, salon, call_id)
    analyzed = event_for(ANALYZED, salon, call_id)

    first = await post(client, ended)
    second = await post(client, analyzed)

    assert (first.status_code, second.status_code) == (202, 202)
    rows = {r.id: r for r in await events_of(db, salon.tenant.company_id, "retell")}
    for answer, body, event in ((first, ended, "call_ended"), (second, analyzed, "call_analyzed")):
        row = rows[answer.json()["event_id"]]
        assert (row.event_id, row.event_type, row.status, row.correlation_id) == (
            f"{event}:{call_id}",
            event,
            "pending",
            call_id,
        )
        assert row.payload == body
        assert await queued_job(redis, row.id) == (PROCESS_JOB, (row.id,))


async def test_ten_concurrent_and_five_later_deliveries_store_one_event(
    client: httpx.AsyncClient, db: Database, salon: Salon
) -> None:
    body = event_for(ENDED, salon)
    raw, headers = signed(body)

    async def deliver() -> httpx.Response:
        return await client.post("/v1/webhooks/retell", content=raw, headers=headers)

    answers = list(await asyncio.gather(*(deliver() for _ in range(10))))
    answers += [await deliver() for _ in range(5)]

    assert [r.status_code for r in answers].count(202) == 1
    assert sorted(r.status_code for r in answers) == [200] * 14 + [202]
    [row] = await events_of(db, salon.tenant.company_id, "retell")
    assert {r.json()["event_id"] for r in answers} == {row.id}
    assert {r.json()["status"] for r in answers if r.status_code == 200} == {"in_progress"}


async def test_timestamp_window_is_five_minutes(
    client: httpx.AsyncClient, db: Database, salon: Salon
) -> None:
    now = retell.now_ms()
    stale = await post(client, event_for(ENDED, salon), ts=now - 5 * 60_000 - 1_000)
    future = await post(client, event_for(ENDED, salon), ts=now + 5 * 60_000 + 1_000)
    assert (stale.status_code, future.status_code) == (401, 401)
    assert await events_of(db, salon.tenant.company_id, "retell") == []

    fresh_enough = await post(client, event_for(ENDED, salon), ts=now - 4 * 60_000 - 59_000)
    assert fresh_enough.status_code == 202


async def test_bad_or_missing_signature_is_401_and_nothing_stored(
    client: httpx.AsyncClient, db: Database, salon: Salon
) -> None:
    body = event_for(ENDED, salon)
    raw, headers = signed(body)
    position = raw.index(b"user_hangup")
    tampered = raw[:position] + b"U" + raw[position + 1 :]
    answers = [
        await client.post("/v1/webhooks/retell", content=tampered, headers=headers),
        await client.post("/v1/webhooks/retell", content=raw),
        await post(client, body, key="key_of_someone_else"),
        await client.post(
            "/v1/webhooks/retell", content=raw, headers={"X-Retell-Signature": "v=1,d=zz"}
        ),
    ]
    assert [a.status_code for a in answers] == [401] * 4
    assert {a.json()["code"] for a in answers} == {"unauthorized"}
    assert await events_of(db, salon.tenant.company_id, "retell") == []


async def test_event_no_company_claims_is_stored_unattributed_with_the_platform_key(
    client: httpx.AsyncClient, db: Database
) -> None:
    body = event_for(ENDED, None)
    assert body["call"]["to_number"] == UNKNOWN_NUMBER

    assert (await post(client, body)).status_code == 401  # a company key cannot sign for it
    answer = await post(client, body, key=PLATFORM_RETELL_KEY)

    assert answer.status_code == 202
    unattributed = await events_of(db, None, "retell")
    assert [r.id for r in unattributed if r.correlation_id == body["call"]["call_id"]] == [
        answer.json()["event_id"]
    ]


async def test_platform_key_also_signs_for_a_known_company(
    client: httpx.AsyncClient, db: Database, salon: Salon
) -> None:
    answer = await post(client, event_for(ENDED, salon), key=PLATFORM_RETELL_KEY)
    assert answer.status_code == 202
    [row] = await events_of(db, salon.tenant.company_id, "retell")
    assert row.id == answer.json()["event_id"]


SCHEMA_VIOLATIONS: list[tuple[str, Any, str | None]] = [
    ("not_json", b'{"event": "call_ended", "call": {', None),
    ("array", b"[]", None),
    ("nan", b'{"event": "call_ended", "call": {"call_id": "c1", "duration_ms": NaN}}', None),
    ("no_event", {"call": {"call_id": "c1"}}, "event"),
    ("event_number", {"event": 1, "call": {"call_id": "c1"}}, "event"),
    ("no_call", {"event": "call_ended"}, "call"),
    ("call_list", {"event": "call_ended", "call": []}, "call"),
    ("no_call_id", {"event": "call_ended", "call": {"agent_id": "a"}}, "call.call_id"),
    ("call_id_long", {"event": "call_ended", "call": {"call_id": "c" * 101}}, "call.call_id"),
    (
        "duration_text",
        {"event": "call_ended", "call": {"call_id": "c1", "duration_ms": "95s"}},
        "call.duration_ms",
    ),
    (
        "analysis_text",
        {"event": "call_analyzed", "call": {"call_id": "c1", "call_analysis": "ok"}},
        "call.call_analysis",
    ),
    (
        "transcript_list",
        {"event": "call_ended", "call": {"call_id": "c1", "transcript": ["hi"]}},
        "call.transcript",
    ),
]


@pytest.mark.parametrize(
    ("body", "field"),
    [(body, field) for _, body, field in SCHEMA_VIOLATIONS],
    ids=[name for name, _, _ in SCHEMA_VIOLATIONS],
)
async def test_signed_body_that_is_not_retells_schema_is_400(
    client: httpx.AsyncClient, db: Database, body: Any, field: str | None
) -> None:
    before = len(await events_of(db, None, "retell"))
    answer = await post(client, body, key=PLATFORM_RETELL_KEY)

    assert answer.status_code == 400, answer.text
    problem = answer.json()
    assert (problem["code"], problem["status"]) == ("invalid_payload", 400)
    if field is not None:
        assert field in [e["field"] for e in problem["errors"]]
    assert len(await events_of(db, None, "retell")) == before


async def test_unsigned_garbage_is_401_not_400(client: httpx.AsyncClient) -> None:
    """Without a key that verifies, nothing about the body is judged: 401 first."""
    answer = await client.post(
        "/v1/webhooks/retell",
        content=b"not json",
        headers={"X-Retell-Signature": retell.sign(b"not json", "wrong", retell.now_ms())},
    )
    assert answer.status_code == 401


async def test_body_over_one_mib_is_413(client: httpx.AsyncClient, salon: Salon) -> None:
    body = event_for(ENDED, salon)
    body["call"]["transcript"] = "x" * (1024 * 1024)
    answer = await post(client, body)
    assert answer.status_code == 413
    assert answer.json()["code"] == "payload_too_large"
