"""`POST /v1/webhooks/calcom/{company_id}`: signature on the raw bytes, schema, one row per
event under the derived dedupe key, the job in the real ARQ queue; SQLite and MariaDB."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from arq.connections import ArqRedis
from redis.asyncio import Redis

from services.webhooks.ingest.handling import PROCESS_JOB
from services.webhooks.ingest.service import MAX_BODY, SecretCache
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.jobs.queue import WEBHOOKS_QUEUE
from shared.models import Company, WebhookEvent
from tests.support.factories import create_tenant
from tests.support.servers import ServerGroup, group_client
from tests.webhooks import (
    CALCOM_SECRET,
    AppClient,
    calcom_headers,
    events_of,
    load_json,
    queued_job,
    set_calcom_secret,
)

CREATED = load_json("calcom", "webhook-BOOKING_CREATED.example.json")
CANCELLED = load_json("calcom", "webhook-BOOKING_CANCELLED.example.json")
NO_SHOW = load_json("calcom", "webhook-BOOKING_NO_SHOW_UPDATED.example.json")
MEETING_ENDED = load_json("calcom", "webhook-MEETING_ENDED.example.json")
PING = {
    "triggerEvent": "PING",
    "createdAt": "2025-07-01T10:00:00.000Z",
    "payload": {
        "type": "Test",
        "title": "Test trigger event",
        "description": "",
        "startTime": "2025-07-01T10:00:00.000Z",
        "endTime": "2025-07-01T10:00:00.000Z",
        "attendees": [{"email": "jdoe@example.com", "name": "John Doe"}],
        "organizer": {"name": "Cal", "email": "no-reply@cal.com", "timeZone": "Europe/London"},
    },
}


def e2e_snapshot() -> dict[str, Any]:
    """The Playwright snapshot of a real delivery, its redacted placeholders replaced by
    concrete values of the right type (the snapshot hides uid, times and ids)."""
    body = load_json("calcom", "webhook-BOOKING_CREATED.e2e-snapshot.json")
    payload = body["payload"]
    body["createdAt"] = "2023-03-02T10:00:00.000Z"
    payload.update(
        startTime="2023-03-03T09:00:00.000Z",
        endTime="2023-03-03T09:30:00.000Z",
        eventTypeId=3,
        uid="e2eSnapshotUid0001",
        bookingId=12,
    )
    payload["organizer"]["email"] = "pro@example.com"
    return body


def expected_key(company_id: str, *parts: object) -> str:
    """The documented derivation (services/webhooks/ingest/payloads.py), computed independently."""
    material = json.dumps([company_id, *parts], separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()


@pytest.fixture
async def company(db: Database) -> str:
    tenant = await create_tenant(db)
    await set_calcom_secret(db, tenant.company_id, CALCOM_SECRET)
    return tenant.company_id


def body_with(uid: str, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(CREATED)
    body["payload"]["uid"] = uid
    body["payload"].update(changes)
    return body


async def post(
    client: httpx.AsyncClient, company_id: str, raw: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(
        f"/v1/webhooks/calcom/{company_id}",
        content=raw,
        headers=calcom_headers(raw) if headers is None else headers,
    )


async def set_status(db: Database, event_id: str, status: str) -> None:
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            sa.update(WebhookEvent).where(WebhookEvent.id == event_id).values(status=status)
        )


# --- once and only once ------------------------------------------------------------------------


async def test_ten_concurrent_and_five_later_deliveries_store_and_enqueue_one_event(
    client: httpx.AsyncClient, db: Database, redis: Redis, company: str
) -> None:
    raw = json.dumps(body_with("uid-concurrent-1")).encode()

    first_wave = await asyncio.gather(*(post(client, company, raw) for _ in range(10)))

    assert sorted(r.status_code for r in first_wave) == [200] * 9 + [202]
    accepted = next(r for r in first_wave if r.status_code == 202).json()
    assert accepted["status"] == "accepted"
    event_id = accepted["event_id"]
    # No worker runs here: the event is still pending, so every repeat is "in progress".
    assert {json.dumps(r.json()) for r in first_wave if r.status_code == 200} == {
        json.dumps({"status": "in_progress", "event_id": event_id})
    }
    rows = await events_of(db, company, "calcom")
    assert [(r.id, r.status, r.attempts, r.event_type) for r in rows] == [
        (event_id, "pending", 0, "BOOKING_CREATED")
    ]
    assert rows[0].payload == json.loads(raw)
    assert rows[0].event_id == expected_key(
        company, "BOOKING_CREATED", "uid-concurrent-1", "2023-05-25T09:30:00Z", "", ""
    )
    assert await queued_job(redis, event_id) == (PROCESS_JOB, (event_id,))
    queue = [m.decode() for m in await redis.zrange(WEBHOOKS_QUEUE, 0, -1)]
    assert queue.count(f"webhook:{event_id}") == 1

    for status, answer in (
        ("pending", "in_progress"),
        ("processing", "in_progress"),
        ("processed", "already_processed"),
        ("ignored", "already_processed"),
        ("failed", "already_processed"),
    ):
        await set_status(db, event_id, status)
        later = await post(client, company, raw)
        assert (later.status_code, later.json()) == (
            200,
            {"status": answer, "event_id": event_id},
        ), status
    assert len(await events_of(db, company, "calcom")) == 1


@pytest.fixture(scope="module")
async def webhook_servers(settings: Settings) -> AsyncIterator[ServerGroup]:
    env = {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url or ""}
    async with ServerGroup("services.webhooks.app:create", 2, env) as group:
        yield group


async def test_concurrent_deliveries_across_two_processes_store_one_event(
    webhook_servers: ServerGroup, db: Database, redis: Redis, company: str
) -> None:
    raw = json.dumps(body_with("uid-two-processes")).encode()
    urls = webhook_servers.urls
    async with group_client(timeout=20) as http:
        answers = await asyncio.gather(
            *(
                http.post(
                    f"{urls[n % 2]}/v1/webhooks/calcom/{company}",
                    content=raw,
                    headers=calcom_headers(raw),
                )
                for n in range(10)
            )
        )
    assert sorted(r.status_code for r in answers) == [200] * 9 + [202]
    rows = await events_of(db, company, "calcom")
    assert len(rows) == 1
    assert {r.json()["event_id"] for r in answers} == {rows[0].id}
    assert await queued_job(redis, rows[0].id) == (PROCESS_JOB, (rows[0].id,))


# --- signature ---------------------------------------------------------------------------------


async def test_one_flipped_byte_is_refused_and_nothing_stored(
    client: httpx.AsyncClient, db: Database, company: str
) -> None:
    raw = json.dumps(body_with("uid-flipped")).encode()
    headers = calcom_headers(raw)
    position = raw.index(b"uid-flipped")
    tampered = raw[:position] + b"U" + raw[position + 1 :]  # "uid-" -> "Uid-"

    refused = await post(client, company, tampered, headers)

    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "unauthorized"
    assert await events_of(db, company, "calcom") == []
    assert (await post(client, company, raw, headers)).status_code == 202


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Cal-Signature-256": ""},
        {"X-Cal-Signature-256": "sha256=" + "0" * 64},
        {"X-Cal-Signature-256": "z" * 64},
        {"X-Cal-Signature-256": "0" * 63},
        {"X-Cal-Signature-256": "a" * 5000},
        {"X-Cal-Signature-256": "0" * 64},
    ],
    ids=["missing", "empty", "prefixed", "not_hex", "short", "huge", "wrong"],
)
async def test_missing_or_bad_signature_is_401(
    client: httpx.AsyncClient, db: Database, company: str, headers: dict[str, str]
) -> None:
    raw = json.dumps(body_with("uid-bad-signature")).encode()
    answer = await post(client, company, raw, {**headers, "Content-Type": "application/json"})
    assert answer.status_code == 401
    assert answer.json()["code"] == "unauthorized"
    assert await events_of(db, company, "calcom") == []


async def test_signature_compares_hex_case_insensitively(
    client: httpx.AsyncClient, company: str
) -> None:
    raw = json.dumps(body_with("uid-upper-hex")).encode()
    upper = {"X-Cal-Signature-256": calcom_headers(raw)["X-Cal-Signature-256"].upper()}
    assert (await post(client, company, raw, upper)).status_code == 202


async def test_unknown_inactive_or_secretless_company_is_401(
    client: httpx.AsyncClient, db: Database
) -> None:
    raw = json.dumps(body_with("uid-unknown")).encode()
    for company_id in (str(uuid.uuid4()), "x" * 300, "%00", "ümlaut"):
        assert (await post(client, company_id, raw)).status_code == 401, company_id

    no_secret = (await create_tenant(db)).company_id
    assert (await post(client, no_secret, raw)).status_code == 401

    inactive = (await create_tenant(db)).company_id
    await set_calcom_secret(db, inactive, CALCOM_SECRET)
    async with db.transaction(SYSTEM) as session:
        await session.execute(sa.update(Company).where(Company.id == inactive).values(active=False))
    assert (await post(client, inactive, raw)).status_code == 401

    async with db.transaction(SYSTEM, write=False) as session:
        stored = await session.scalar(
            sa.select(sa.func.count())
            .select_from(WebhookEvent)
            .where(WebhookEvent.company_id.in_([no_secret, inactive]))
        )
    assert stored == 0


async def test_a_rotated_secret_works_at_once_and_the_old_one_stops(
    client: httpx.AsyncClient, db: Database, company: str
) -> None:
    first = json.dumps(body_with("uid-rotate-1")).encode()
    assert (await post(client, company, first)).status_code == 202  # caches the secret

    await set_calcom_secret(db, company, "whsec_rotated")
    await asyncio.sleep(1.05)  # the cache re-reads a secret at most once a second per company
    second = json.dumps(body_with("uid-rotate-2")).encode()
    rotated = await post(client, company, second, calcom_headers(second, "whsec_rotated"))
    assert rotated.status_code == 202

    third = json.dumps(body_with("uid-rotate-3")).encode()
    assert (await post(client, company, third)).status_code == 401


async def test_company_deleted_while_its_secret_is_cached_is_401_not_500(
    client: httpx.AsyncClient, db: Database
) -> None:
    doomed = (await create_tenant(db)).company_id
    await set_calcom_secret(db, doomed, CALCOM_SECRET)
    first = json.dumps(body_with("uid-doomed-1")).encode()
    assert (await post(client, doomed, first)).status_code == 202  # the secret is cached now
    async with db.transaction(SYSTEM) as session:
        await session.execute(sa.delete(Company).where(Company.id == doomed))

    later = await post(client, doomed, json.dumps(body_with("uid-doomed-2")).encode())

    assert (later.status_code, later.json()["code"]) == (401, "unauthorized")
    assert await events_of(db, doomed, "calcom") == []


def test_secret_cache_entries_expire_after_the_ttl() -> None:
    cache = SecretCache(ttl_s=30)
    cache.put("c1", "old", now=100.0)
    assert cache.get("c1", now=129.9) == (100.0, "old")
    assert cache.get("c1", now=130.0) is None  # a changed secret is read again within 30 s
    assert SecretCache(ttl_s=0).get("c1", now=100.0) is None


# --- size ----------------------------------------------------------------------------------------


def padded(size: int) -> bytes:
    """A valid BOOKING_CREATED body of exactly `size` bytes (padding in an unknown field)."""
    body = body_with(f"uid-size-{size}", padding="")
    bare = len(json.dumps(body).encode())
    body["payload"]["padding"] = "x" * (size - bare)
    raw = json.dumps(body).encode()
    assert len(raw) == size
    return raw


async def test_body_of_exactly_one_mib_is_accepted_one_byte_more_is_413(
    client: httpx.AsyncClient, db: Database, company: str
) -> None:
    assert (await post(client, company, padded(MAX_BODY))).status_code == 202

    too_big = padded(MAX_BODY + 1)
    refused = await post(client, company, too_big)
    assert refused.status_code == 413
    assert refused.json()["code"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: streamed, chunked
        for start in range(0, len(too_big), 64 * 1024):
            yield too_big[start : start + 64 * 1024]

    streamed = await client.post(
        f"/v1/webhooks/calcom/{company}", content=chunks(), headers=calcom_headers(too_big)
    )
    assert streamed.status_code == 413
    assert len(await events_of(db, company, "calcom")) == 1


# --- schema ------------------------------------------------------------------------------------


def _mutate(change: Any) -> bytes:
    body = body_with("uid-schema")
    change(body)
    return json.dumps(body).encode()


def _set(path: str, value: Any) -> Any:
    def apply(body: dict[str, Any]) -> None:
        target = body
        *parents, last = path.split(".")
        for part in parents:
            target = target[part]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value

    return apply


SCHEMA_VIOLATIONS: list[tuple[str, bytes, str | None]] = [
    ("not_json", b'{"triggerEvent": "BOOKING_CREATED", ', None),
    ("not_utf8", b'{"triggerEvent": "\xff"}', None),
    ("array", b"[1, 2]", None),
    ("nan", b'{"triggerEvent": "BOOKING_CREATED", "payload": {"price": NaN}}', None),
    ("infinity", b'{"triggerEvent": "BOOKING_CREATED", "payload": {"price": 1e999}}', None),
    ("too_deep", b'{"triggerEvent": "X", "payload": ' + b'{"a": ' * 40 + b"1" + b"}" * 41, None),
    ("no_trigger", _mutate(_set("triggerEvent", KeyError)), "triggerEvent"),
    ("trigger_number", _mutate(_set("triggerEvent", 5)), "triggerEvent"),
    ("payload_list", _mutate(_set("payload", [])), "payload"),
    ("no_uid", _mutate(_set("payload.uid", KeyError)), "payload.uid"),
    ("uid_number", _mutate(_set("payload.uid", 91)), "payload.uid"),
    ("uid_too_long", _mutate(_set("payload.uid", "u" * 101)), "payload.uid"),
    ("start_not_iso", _mutate(_set("payload.startTime", "tomorrow 9am")), "payload.startTime"),
    ("start_naive", _mutate(_set("payload.startTime", "2023-05-25T09:30:00")), "payload.startTime"),
    ("start_missing", _mutate(_set("payload.startTime", KeyError)), "payload.startTime"),
    ("end_number", _mutate(_set("payload.endTime", 1684999800)), "payload.endTime"),
    ("event_type_text", _mutate(_set("payload.eventTypeId", "7")), "payload.eventTypeId"),
    ("event_type_bool", _mutate(_set("payload.eventTypeId", True)), "payload.eventTypeId"),
    ("event_type_huge", _mutate(_set("payload.eventTypeId", 2**40)), "payload.eventTypeId"),
    ("attendees_object", _mutate(_set("payload.attendees", {})), "payload.attendees"),
    ("attendee_text", _mutate(_set("payload.attendees", ["a@b.c"])), "payload.attendees[0]"),
    (
        "attendee_email_list",
        _mutate(_set("payload.attendees", [{"email": ["a@b.c"]}])),
        "payload.attendees[0].email",
    ),
    ("organizer_text", _mutate(_set("payload.organizer", "pro")), "payload.organizer"),
    ("reschedule_number", _mutate(_set("payload.rescheduleUid", 1)), "payload.rescheduleUid"),
]


@pytest.mark.parametrize(
    ("raw", "field"),
    [(raw, field) for _, raw, field in SCHEMA_VIOLATIONS],
    ids=[name for name, _, _ in SCHEMA_VIOLATIONS],
)
async def test_body_that_is_not_calcoms_schema_is_400_and_not_stored(
    client: httpx.AsyncClient, db: Database, company: str, raw: bytes, field: str | None
) -> None:
    answer = await post(client, company, raw)

    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert (problem["status"], problem["code"]) == (400, "invalid_payload")
    if field is not None:
        assert field in [e["field"] for e in problem["errors"]]
        assert field in problem["detail"]
    assert await events_of(db, company, "calcom") == []


async def test_every_violation_is_named_in_one_answer(
    client: httpx.AsyncClient, company: str
) -> None:
    body = body_with("uid-many", startTime="soon", eventTypeId="seven", attendees="all")
    answer = await post(client, company, json.dumps(body).encode())
    assert answer.status_code == 400
    assert [e["field"] for e in answer.json()["errors"]] == [
        "payload.startTime",
        "payload.eventTypeId",
        "payload.attendees",
    ]


# --- the contract payloads ---------------------------------------------------------------------


def contract_cases(company: str) -> list[tuple[str, dict[str, Any], str, str]]:
    """(name, body, event_type, expected dedupe key) of every payload in contracts/calcom/."""
    no_show_pairs = [["test@example.com", True]]
    return [
        (
            "BOOKING_CREATED.example",
            CREATED,
            "BOOKING_CREATED",
            expected_key(
                company, "BOOKING_CREATED", "bFJeNb2uX8ANpT3JL5EfXw", "2023-05-25T09:30:00Z", "", ""
            ),
        ),
        (
            "BOOKING_CREATED.e2e-snapshot",
            e2e_snapshot(),
            "BOOKING_CREATED",
            expected_key(
                company, "BOOKING_CREATED", "e2eSnapshotUid0001", "2023-03-03T09:00:00Z", "", ""
            ),
        ),
        (
            "BOOKING_CANCELLED.example",
            CANCELLED,
            "BOOKING_CANCELLED",
            expected_key(
                company,
                "BOOKING_CANCELLED",
                "unique-booking-identifier",
                "2024-01-04T10:00:00Z",
                "",
                "",
            ),
        ),
        (
            "BOOKING_NO_SHOW_UPDATED.example",
            NO_SHOW,
            "BOOKING_NO_SHOW_UPDATED",
            expected_key(
                company, "BOOKING_NO_SHOW_UPDATED", "5vQFqxDFMjdgKGMijqtqRw", "", "", no_show_pairs
            ),
        ),
        (
            "MEETING_ENDED.example (flat)",
            MEETING_ENDED,
            "MEETING_ENDED",
            expected_key(
                company,
                "MEETING_ENDED",
                "unique-booking-identifier",
                "2024-01-01T10:00:00Z",
                "",
                "",
            ),
        ),
    ]


async def test_every_contract_payload_is_accepted_under_its_dedupe_key(
    client: httpx.AsyncClient, db: Database, redis: Redis, company: str
) -> None:
    cases = contract_cases(company)
    answers = []
    for name, body, _, _ in cases:
        answer = await post(client, company, json.dumps(body).encode())
        assert answer.status_code == 202, f"{name}: {answer.text}"
        answers.append(answer.json()["event_id"])

    rows = {row.id: row for row in await events_of(db, company, "calcom")}
    assert len(rows) == len(cases)
    for event_id, (name, body, event_type, key) in zip(answers, cases, strict=True):
        row = rows[event_id]
        assert (row.event_type, row.event_id, row.status) == (event_type, key, "pending"), name
        assert row.payload == body, name
        assert await queued_job(redis, event_id) == (PROCESS_JOB, (event_id,)), name


async def test_test_ping_is_acknowledged_recorded_ignored_and_not_enqueued(
    client: httpx.AsyncClient, db: Database, redis: Redis, company: str
) -> None:
    answer = await post(client, company, json.dumps(PING).encode())

    assert answer.status_code == 202
    event_id = answer.json()["event_id"]
    [row] = await events_of(db, company, "calcom")
    assert (row.id, row.event_type, row.status, row.error_message) == (
        event_id,
        "PING",
        "ignored",
        "test ping",
    )
    assert row.processed_at is not None
    assert await queued_job(redis, event_id) is None
    again = await post(client, company, json.dumps(PING).encode())
    assert again.json() == {"status": "already_processed", "event_id": event_id}


async def test_unknown_trigger_event_is_stored_and_enqueued_for_the_processor(
    client: httpx.AsyncClient, db: Database, redis: Redis, company: str
) -> None:
    body = {"triggerEvent": "OOO_CREATED", "createdAt": "2025-01-01T00:00:00Z", "payload": {}}
    answer = await post(client, company, json.dumps(body).encode())
    assert answer.status_code == 202
    [row] = await events_of(db, company, "calcom")
    assert (row.event_type, row.status) == ("OOO_CREATED", "pending")
    assert await queued_job(redis, row.id) == (PROCESS_JOB, (row.id,))
    # Without a booking uid the key covers the body (minus createdAt): another OOO event is
    # another event, the same one sent again is a repeat.
    resent = {**body, "createdAt": "2025-01-01T00:00:09Z"}
    assert (await post(client, company, json.dumps(resent).encode())).status_code == 200
    other = {**body, "payload": {"oooEntry": {"id": 2}}}
    assert (await post(client, company, json.dumps(other).encode())).status_code == 202


async def test_dedupe_key_ignores_send_time_and_spelling_but_not_the_change(
    client: httpx.AsyncClient, db: Database, company: str
) -> None:
    async def status_of(body: dict[str, Any]) -> int:
        return (await post(client, company, json.dumps(body).encode())).status_code

    base = body_with("uid-dedupe", startTime="2023-05-25T09:30:00Z")
    assert await status_of(base) == 202
    resent = copy.deepcopy(base)
    resent["createdAt"] = "2023-05-24T09:31:07.000Z"  # Cal.com's send time
    resent["payload"]["startTime"] = "2023-05-25T11:30:00.000+02:00"  # the same instant
    assert await status_of(resent) == 200
    # The same booking moved, cancelled, or rescheduled from elsewhere: new events.
    assert await status_of(body_with("uid-dedupe", startTime="2023-05-25T10:30:00Z")) == 202
    assert await status_of({**base, "triggerEvent": "BOOKING_CANCELLED"}) == 202
    assert await status_of(body_with("uid-dedupe", rescheduleUid="uid-old")) == 202
    assert await status_of(body_with("uid-dedupe", rescheduleUid="uid-old")) == 200
    # No-show marked, then unmarked: two events; the same mark again: a repeat.
    unmarked = copy.deepcopy(NO_SHOW)
    unmarked["payload"]["attendees"][0]["noShow"] = False
    assert await status_of(NO_SHOW) == 202
    assert await status_of(unmarked) == 202
    assert await status_of(NO_SHOW) == 200
    assert len(await events_of(db, company, "calcom")) == 6


async def test_the_same_event_for_two_companies_is_two_events(
    client: httpx.AsyncClient, db: Database, company: str
) -> None:
    other = (await create_tenant(db)).company_id
    await set_calcom_secret(db, other, CALCOM_SECRET)
    raw = json.dumps(body_with("uid-shared")).encode()
    assert (await post(client, company, raw)).status_code == 202
    assert (await post(client, other, raw)).status_code == 202
    assert len(await events_of(db, other, "calcom")) == 1


# --- Redis down --------------------------------------------------------------------------------


async def test_redis_failure_after_commit_still_answers_202_and_keeps_the_row(
    client: AppClient, db: Database, company: str
) -> None:
    app = client.app
    working = app.state.arq
    down = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    app.state.arq = ArqRedis(connection_pool=down.connection_pool)
    try:
        answer = await post(client, company, json.dumps(body_with("uid-redis-down")).encode())
    finally:
        app.state.arq = working
        await down.aclose()
    assert answer.status_code == 202
    [row] = await events_of(db, company, "calcom")
    assert (row.id, row.status) == (answer.json()["event_id"], "pending")  # the sweeper's


# --- malformed requests never 500 ---------------------------------------------------------------


async def test_malformed_requests_get_problem_answers_never_500(
    client: httpx.AsyncClient, company: str
) -> None:
    raw = json.dumps(body_with("uid-fuzz")).encode()
    signed = calcom_headers(raw)
    attempts: list[tuple[str, str, bytes, dict[str, str]]] = [
        ("POST", f"/v1/webhooks/calcom/{company}", b"", signed),
        ("POST", f"/v1/webhooks/calcom/{company}", raw, {**signed, "Content-Length": "-1"}),
        ("POST", f"/v1/webhooks/calcom/{company}", raw, {**signed, "Content-Length": "1e9"}),
        ("POST", f"/v1/webhooks/calcom/{company}", raw, {**signed, "Content-Type": "text/xml"}),
        ("POST", "/v1/webhooks/calcom/", raw, signed),
        ("POST", "/v1/webhooks/calcom/" + "%FF" * 50, raw, signed),
        ("GET", f"/v1/webhooks/calcom/{company}", b"", {}),
        ("POST", f"/v1/webhooks/calcom/{company}", b"\x00" * 100, calcom_headers(b"\x00" * 100)),
        ("POST", f"/v1/webhooks/calcom/{company}", b"null", calcom_headers(b"null")),
    ]
    statuses: list[int] = []
    for method, url, content, headers in attempts:
        try:
            answer = await client.request(method, url, content=content, headers=headers)
        except httpx.LocalProtocolError:
            continue  # the client itself refuses to send it
        assert answer.status_code < 500, (url, headers, answer.text)
        if answer.status_code >= 400:
            assert answer.headers["content-type"] == "application/problem+json", (url, headers)
            assert answer.json()["detail"]
        statuses.append(answer.status_code)
    # Empty and NUL bodies are signed for other bytes (401); "null" is signed but no object.
    assert statuses[0] == 401 and statuses[-2:] == [400, 400], statuses


async def test_created_at_is_an_aware_utc_instant(
    client: httpx.AsyncClient, db: Database, company: str
) -> None:
    before = datetime.now(UTC)
    await post(client, company, json.dumps(body_with("uid-time")).encode())
    [row] = await events_of(db, company, "calcom")
    assert row.created_at.tzinfo is not None
    assert before <= row.created_at <= datetime.now(UTC)
