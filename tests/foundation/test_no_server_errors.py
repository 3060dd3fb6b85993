"""Guarantee 5: no input, however malformed, yields a 500; every refusal says why.

Part one fuzzes every operation of the four services' OpenAPI schemas with schemathesis
(valid and schema-violating requests, a fresh salon's admin key most of the time, real ids
planted into id fields). Part two sends the malformed inputs a schema-driven generator does
not produce: bodies that are not JSON, not objects, huge, deeply nested, not UTF-8, of the
wrong content type; impossible dates and times; overlong ids and idempotency keys; and
correctly signed but garbage Retell function calls. Each answer must be below 500 and every
4xx an application/problem+json with `code`, `status` and a `detail`.

Regressions (each was a 500 once; the case ids name them):
- availability_year_1 / availability_year_9999, first_day / last_day of the agent functions:
  dates at the ends of the calendar overflowed converting local hours to UTC.
- deeply_nested_* on the Retell path: the body parser's RecursionError escaped.
- timestamp_5000_digits: int() of an over-long signature timestamp raised ValueError.
- lone_surrogate(s)/lone_surrogate_key(s): text UTF-8 cannot encode was stored (policy
  staff_note, agent args) or echoed in a refusal.
- working_hours_weekday_2_63: an unbounded integer filter overflowed SQLite's INTEGER.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.security.api_keys import issue_key
from tests.booking.agent_support import enable_retell, signed
from tests.conftest import Services
from tests.support.factories import (
    Salon,
    create_platform_key,
    create_salon,
    create_tenant,
    next_weekday,
)
from tests.support.fuzz import (
    NOT_JSON_APIS,
    Fuzzer,
    assert_no_server_error,
    load_schema,
    operations,
)
from tests.support.routes import api_routes

SERVICES = ["booking", "policy", "webhooks", "notifications"]
# Valid and schema-violating each: 30 requests per operation; FUZZ_EXAMPLES=500 digs deeper.
EXAMPLES_PER_MODE = int(os.environ.get("FUZZ_EXAMPLES", "15"))


async def admin_key(db: Database, company_id: str) -> str:
    async with db.transaction(SYSTEM) as session:
        issued = issue_key(session, company_id=company_id, name="fuzz", scopes=["admin"])
    return issued.plaintext


ADMIN_RESOURCES = [
    "branches",
    "services",
    "staff",
    "staff-services",
    "working-hours",
    "time-off",
    "phone-numbers",
    "api-keys",
]


@dataclass
class Target:
    """A fresh salon with one booked appointment, one callback request and its admin ids."""

    salon: Salon
    appointment_id: str
    callback_id: str
    admin_ids: dict[str, list[str]]

    @property
    def company_id(self) -> str:
        return self.salon.tenant.company_id

    @property
    def known_ids(self) -> dict[str, list[str]]:
        salon = self.salon
        entities = [self.company_id, salon.branch_id, salon.service_id, *salon.staff_ids]
        return {
            **self.admin_ids,
            "branch_id": [salon.branch_id],
            "service_id": [salon.service_id],
            "staff_id": list(salon.staff_ids),
            "appointment_id": [self.appointment_id],
            "callback_id": [self.callback_id],
            "entity_id": entities,
        }


async def make_target(services: Services, db: Database) -> Target:
    salon = await create_salon(db)
    await enable_retell(db, salon)
    booking = services.clients["booking"]
    day = next_weekday(1, at_least_days=10)
    booked = await booking.post(
        "/v1/appointments",
        headers=salon.headers,
        json={
            "service_id": salon.service_id,
            "start": f"{day.isoformat()}T10:00:00+01:00",
            "customer": {"name": "Fuzz Target", "phone": "+491701112233"},
        },
    )
    assert booked.status_code == 201, booked.text
    callback = await booking.post(
        "/v1/callbacks",
        headers=salon.headers,
        json={"phone_number": "+491701112233", "reason": "Fuzz target"},
    )
    assert callback.status_code == 201, callback.text
    admin_ids: dict[str, list[str]] = {}
    for resource in ADMIN_RESOURCES:
        listed = await booking.get(f"/v1/admin/{resource}", headers=salon.headers)
        assert listed.status_code == 200, listed.text
        admin_ids[resource] = [item["id"] for item in listed.json()["items"]]
    return Target(salon, booked.json()["id"], callback.json()["id"], admin_ids)


@pytest.fixture
async def target(services: Services, db: Database) -> Target:
    return await make_target(services, db)


# Part one: schemathesis over every operation -------------------------------------------


def test_every_route_is_in_the_schema(services: Services) -> None:
    """The fuzzer covers what the schema lists: no API route may hide from the schema."""
    for name, app in services.apps.items():
        listed = {op.path for op in operations(load_schema(app))}
        routes = {
            route.path
            for route in api_routes(app)
            if route.in_schema and not route.path.startswith(NOT_JSON_APIS)
        }
        assert len(routes) >= 3, (name, routes)
        assert routes <= listed, (name, routes - listed)
    booking = {op.path for op in operations(load_schema(services.apps["booking"]))}
    assert "/v1/retell/functions/{name}" in booking


@pytest.mark.parametrize("service", SERVICES)
async def test_fuzzing_every_operation_finds_no_server_error(
    services: Services, db: Database, target: Target, service: str
) -> None:
    app = services.apps[service]
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=f"http://{service}.test"
    )
    scoped = await create_tenant(db, scopes=["agent"])
    platform = await create_platform_key(db)
    fuzzer = Fuzzer(
        name=service,
        app=app,
        client=client,
        loop=asyncio.get_running_loop(),
        admin_key=lambda: admin_key(db, target.company_id),
        other_credentials=[
            None,
            "Bearer ak_not_a_key",
            f"Basic {target.salon.tenant.admin_key}",
            f"Bearer {scoped.admin_key}",
            f"Bearer {platform}",
        ],
        known_ids=target.known_ids,
        signed_paths=frozenset({"/v1/retell/functions/{name}", "/v1/retell/inbound"}),
        examples=EXAMPLES_PER_MODE,
    )
    started = time.monotonic()
    try:
        failures = await asyncio.to_thread(fuzzer.fuzz_all)
    finally:
        await client.aclose()
    elapsed = time.monotonic() - started
    print(f"{service}: {fuzzer.requests_sent} requests in {elapsed:.1f} s")
    assert not failures, "\n\n".join(failures)


# Part two: malformed inputs a schema-driven generator does not produce -----------------

HUGE = "x" * 100_000
DEEP = 100_000  # far beyond the JSON parser's recursion limit
FUTURE = next_weekday(2, at_least_days=12).isoformat()  # a Wednesday inside opening hours


def nested(depth: int, leaf: str = "1") -> str:
    return '{"a":' * depth + leaf + "}" * depth


def replace_strings(value: Any, new: Any) -> Any:
    """`value` with every string leaf (not keys) replaced by `new`."""
    if isinstance(value, dict):
        return {key: replace_strings(item, new) for key, item in value.items()}
    if isinstance(value, list):
        return [replace_strings(item, new) for item in value]
    return new if isinstance(value, str) else value


def string_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in string_paths(item, (*path, key))]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in string_paths(item, (*path, index))]
    return [path] if isinstance(value, str) else []


def replaced_at(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = list(value) if isinstance(value, list) else dict(value)
    copy[path[0]] = replaced_at(value[path[0]], path[1:], new)
    return copy


def one_string_at_a_time(value: Any, new: Any) -> list[Any]:
    """One body per string leaf, with only that leaf replaced by `new` (so the other fields
    stay valid and the bad one travels as deep as the code lets it), plus all at once."""
    return [replaced_at(value, path, new) for path in string_paths(value)] + [
        replace_strings(value, new)
    ]


@dataclass(frozen=True)
class Endpoint:
    service: str
    method: str
    path: str
    valid: Any  # Callable[[Target], dict]: a body the endpoint accepts


ENDPOINTS = {
    "appointments": Endpoint(
        "booking",
        "POST",
        "/v1/appointments",
        lambda t: {
            "service_id": t.salon.service_id,
            "start": f"{FUTURE}T11:00:00+01:00",
            "customer": {"name": "Fuzz", "phone": "+491701234599", "email": "f@example.com"},
            "notes": "n",
        },
    ),
    "policy": Endpoint(
        "policy",
        "PUT",
        "/v1/policies/company/{company_id}/cancellation",
        lambda t: {
            "hours_before": 24,
            "fee_tiers": [{"min_hours_before": 0, "fee": "10.00"}],
            "max_per_window": 3,
            "window_days": 30,
            "notify_staff": True,
            "staff_note": "Bitte anrufen",
        },
    ),
    "evaluate": Endpoint(
        "policy",
        "POST",
        "/v1/policies/evaluate",
        lambda t: {
            "action": "cancel",
            "service_id": t.salon.service_id,
            "start": f"{FUTURE}T11:00:00+01:00",
            "at": f"{FUTURE}T08:00:00+01:00",
            "staff_id": t.salon.staff_ids[0],
            "branch_id": t.salon.branch_id,
            "customer_phone": "+491701234599",
        },
    ),
    "callbacks": Endpoint(
        "booking",
        "POST",
        "/v1/callbacks",
        lambda t: {
            "phone_number": "+491701234599",
            "reason": "Fuzz",
            "customer_name": "Fuzz",
            "preferred_time": "morgen",
        },
    ),
}

JSON = {"Content-Type": "application/json"}
Variants = list[tuple[bytes, dict[str, str]]]


def raw(body: bytes, headers: dict[str, str] | None = None) -> Any:
    return lambda _valid: [(body, JSON if headers is None else headers)]


def as_json(make: Any, headers: dict[str, str] | None = None) -> Any:
    return lambda valid: [(json.dumps(make(valid)).encode(), JSON if headers is None else headers)]


def each_string(new: Any) -> Any:
    """Every string field of the valid body replaced by `new`, one at a time."""
    return lambda valid: [
        (json.dumps(body).encode(), JSON) for body in one_string_at_a_time(valid, new)
    ]


def each_string_raw(token: bytes) -> Any:
    """Like each_string, with raw bytes spliced in place of the string (not valid JSON text)."""
    return lambda valid: [
        (json.dumps(body).encode().replace(b'"@@SPLICE@@"', token), JSON)
        for body in one_string_at_a_time(valid, "@@SPLICE@@")
    ]


# Each builder turns the endpoint's valid body into request variants (raw body, headers).
MALFORMED: dict[str, Any] = {
    "not_json": raw(b"this is not json"),
    "truncated_json": raw(b'{"a": '),
    "empty_body": raw(b""),
    "binary_garbage": raw(bytes(range(256))),
    "python_literal": raw(b"{'a': 1}"),
    "json_array": raw(b"[]"),
    "json_array_of_valid": as_json(lambda v: [v]),
    "json_null": raw(b"null"),
    "json_number": raw(b"42"),
    "json_string": raw(b'"text"'),
    "json_true": raw(b"true"),
    "deeply_nested_object": raw(nested(DEEP).encode()),
    "deeply_nested_array": raw(b"[" * DEEP + b"]" * DEEP),
    "deeply_nested_field": each_string_raw(nested(DEEP).encode()),
    "moderately_nested_field": each_string(json.loads(nested(400))),
    "nested_near_the_recursion_limit": each_string_raw(nested(800).encode()),
    "nested_at_the_recursion_limit": each_string_raw(nested(950).encode()),
    "huge_strings": each_string(HUGE),
    "huge_unknown_field": as_json(lambda v: {**v, HUGE: HUGE}),
    "invalid_utf8": raw(b'{"name": "\xff\xfe\xfd"}'),
    "invalid_utf8_in_field": each_string_raw(b'"\xc3\x28"'),
    "lone_surrogate": each_string_raw(rb'"a\ud800b"'),
    "lone_surrogate_key": lambda v: [
        (json.dumps(v)[:-1].encode() + rb', "\udc00x": 1}', JSON),
        (json.dumps(v).encode().replace(b'"', rb'"\ud800', 1), JSON),
    ],
    "nul_character": each_string("a\x00b"),
    "emoji": each_string("\U0001f600\u00fc"),
    "nan": each_string_raw(b"NaN"),
    "infinity": each_string_raw(b"-Infinity"),
    "number_for_string": each_string(4917012345),
    "float_for_string": each_string(1e308),
    "huge_integer_for_string": each_string_raw(b"9" * 4000),
    "too_many_digits": each_string_raw(b"9" * 5000),
    "object_for_string": each_string({"a": [1, None]}),
    "array_for_string": each_string(["x"]),
    "null_for_string": each_string(None),
    "boolean_for_string": each_string(True),
    "empty_string": each_string(""),
    "whitespace_string": each_string(" \t\n "),
    "impossible_date": each_string("2026-02-30T10:00:00+01:00"),
    "hour_24": each_string("2026-03-03T24:00:00+01:00"),
    "time_24_00": each_string("24:00"),
    "date_only": each_string("2026-02-30"),
    "no_offset": each_string("2026-03-03T10:00:00"),
    "first_instant": each_string("0001-01-01T00:00:00+14:00"),
    "last_instant": each_string("9999-12-31T23:59:59-14:00"),
    "earliest_accepted_instant": each_string("1900-01-01T00:00:00+14:00"),
    "latest_accepted_instant": each_string("9998-12-31T23:59:59-14:00"),
    "unix_timestamp": each_string("1767225600"),
    "text_plain": as_json(lambda v: v, {"Content-Type": "text/plain"}),
    "form_urlencoded": raw(
        b"service_id=1&start=2", {"Content-Type": "application/x-www-form-urlencoded"}
    ),
    "multipart_without_boundary": as_json(lambda v: v, {"Content-Type": "multipart/form-data"}),
    "xml": raw(b"<appointment/>", {"Content-Type": "application/xml"}),
    "no_content_type": as_json(lambda v: v, {}),
    "json_latin1_charset": lambda v: [
        (
            json.dumps(replace_strings(v, "M\u00fcller"), ensure_ascii=False).encode("latin-1"),
            {"Content-Type": "application/json; charset=latin-1"},
        )
    ],
    "bogus_content_type": as_json(lambda v: v, {"Content-Type": "\x7f/;;;=="}),
}


@pytest.fixture(scope="module")
async def shared_target(services: Services, db: Database) -> Target:
    """One salon per backend for the many cheap malformed-input cases."""
    return await make_target(services, db)


@pytest.fixture
async def auth(db: Database, shared_target: Target) -> dict[str, str]:
    """A fresh admin key of the shared salon per test: the per-key rate limit never answers."""
    return {"Authorization": f"Bearer {await admin_key(db, shared_target.company_id)}"}


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize("malformed", list(MALFORMED))
async def test_malformed_body_is_refused_with_a_reason(
    services: Services, shared_target: Target, auth: dict[str, str], endpoint: str, malformed: str
) -> None:
    target = ENDPOINTS[endpoint]
    client = services.clients[target.service]
    path = target.path.format(company_id=shared_target.company_id)
    for body, headers in MALFORMED[malformed](target.valid(shared_target)):
        response = await client.request(
            target.method, path, content=body, headers={**auth, **headers}
        )
        assert_no_server_error(response, f"{endpoint}/{malformed} {body[:200]!r}")
        assert response.status_code != 429, response.text


# Malformed paths, query strings and headers of the same endpoints.
LONG_ID = "a" * 10_000
REQUESTS: dict[str, tuple[str, str, str, dict[str, str], Any]] = {
    # name: (service, method, path, extra headers, json body or None)
    "appointment_id_10k": ("booking", "GET", f"/v1/appointments/{LONG_ID}", {}, None),
    "cancel_id_10k": ("booking", "POST", f"/v1/appointments/{LONG_ID}/cancel", {}, {}),
    "reschedule_id_10k": (
        "booking",
        "POST",
        f"/v1/appointments/{LONG_ID}/reschedule",
        {},
        {"start": f"{FUTURE}T12:00:00+01:00"},
    ),
    "callback_id_10k": ("booking", "POST", f"/v1/callbacks/{LONG_ID}/contacted", {}, {}),
    "admin_id_10k": ("booking", "PATCH", f"/v1/admin/staff/{LONG_ID}", {}, {"name": "x"}),
    "policy_entity_10k": (
        "policy",
        "PUT",
        f"/v1/policies/company/{LONG_ID}/cancellation",
        {},
        {"hours_before": 1},
    ),
    "policy_level_10k": ("policy", "GET", f"/v1/policies/{LONG_ID}/x/cancellation", {}, None),
    "evaluate_appointment_id_10k": (
        "policy",
        "POST",
        "/v1/policies/evaluate",
        {},
        {"action": "cancel", "appointment_id": LONG_ID},
    ),
    "retell_name_10k": ("booking", "POST", f"/v1/retell/functions/{LONG_ID}", {}, {}),
    "availability_impossible_date": (
        "booking",
        "GET",
        "/v1/availability?service_id={service_id}&date=2026-02-30",
        {},
        None,
    ),
    "availability_year_9999": (
        "booking",
        "GET",
        "/v1/availability?service_id={service_id}&date=9999-12-31&days=31",
        {},
        None,
    ),
    "availability_last_accepted_day": (
        "booking",
        "GET",
        "/v1/availability?service_id={service_id}&date=9998-12-31&days=31",
        {},
        None,
    ),
    "availability_first_accepted_day": (
        "booking",
        "GET",
        "/v1/availability?service_id={service_id}&date=1900-01-01&days=31",
        {},
        None,
    ),
    "availability_year_1": (
        "booking",
        "GET",
        "/v1/availability?service_id={service_id}&date=0001-01-01",
        {},
        None,
    ),
    "availability_service_id_10k": (
        "booking",
        "GET",
        f"/v1/availability?service_id={LONG_ID}&date={FUTURE}",
        {},
        None,
    ),
    "list_appointments_hour_24": (
        "booking",
        "GET",
        "/v1/appointments?from=2026-03-03T24:00:00%2B01:00",
        {},
        None,
    ),
    "list_appointments_first_instant": (
        "booking",
        "GET",
        "/v1/appointments?from=0001-01-01T00:00:00%2B14:00&to=9999-12-31T23:59:59-14:00",
        {},
        None,
    ),
    "working_hours_weekday_2_63": (
        "booking",
        "GET",
        "/v1/admin/working-hours?weekday=9223372036854775808",
        {},
        None,
    ),
    "effective_ids_10k": (
        "policy",
        "GET",
        f"/v1/policies/effective?policy_type=cancellation&staff_id={LONG_ID}",
        {},
        None,
    ),
    "idempotency_key_300": (
        "booking",
        "POST",
        "/v1/appointments",
        {"Idempotency-Key": "k" * 300},
        "valid",
    ),
    "idempotency_key_255": (
        "booking",
        "POST",
        "/v1/appointments",
        {"Idempotency-Key": "k" * 255},
        "valid",
    ),
    "idempotency_key_latin1": (
        "booking",
        "POST",
        "/v1/appointments",
        {"Idempotency-Key": "\xff" * 255},
        "valid",
    ),
    "idempotency_key_empty": (
        "booking",
        "POST",
        "/v1/appointments",
        {"Idempotency-Key": ""},
        "valid",
    ),
    "authorization_10k": (
        "booking",
        "GET",
        "/v1/appointments",
        {"Authorization": "Bearer " + LONG_ID},
        None,
    ),
    "authorization_latin1": (
        "booking",
        "GET",
        "/v1/appointments",
        {"Authorization": "Bearer \xff\xfe"},
        None,
    ),
    "company_header_10k": ("booking", "GET", "/v1/appointments", {"X-Company-ID": LONG_ID}, None),
}


@pytest.mark.parametrize("name", list(REQUESTS))
async def test_malformed_path_query_or_header_is_refused_with_a_reason(
    services: Services, shared_target: Target, auth: dict[str, str], name: str
) -> None:
    service, method, path, extra, body = REQUESTS[name]
    if body == "valid":
        body = ENDPOINTS["appointments"].valid(shared_target)
    headers: dict[str, Any] = {**auth, **extra}
    encoded = {k: v.encode("latin-1") for k, v in headers.items()}
    response = await services.clients[service].request(
        method,
        path.format(service_id=shared_target.salon.service_id),
        headers=encoded,
        content=None if body is None else json.dumps(body).encode(),
    )
    assert_no_server_error(response, name)


# Part three: signed but garbage Retell function calls ----------------------------------

BOOK = "/v1/retell/functions/book_appointment"
VALID_ARGS = {
    "service": "Herrenhaarschnitt",
    "date": FUTURE,
    "time": "15:00",
    "customer_name": "Fuzz Anrufer",
    "customer_phone": "+491701234598",
    "customer_email": "anrufer@example.com",
    "staff": "Anna",
    "notes": "Fuzz",
}


def call_of(target: Target, **extra: Any) -> dict[str, Any]:
    # A caller ID of its own per call: the per-number rate limit counts the caller ID (else the
    # args' customer_phone, ADR 0011), and hundreds of fuzz calls must not share one number.
    return {
        "call_id": f"call_{uuid.uuid4().hex[:12]}",
        "agent_id": "agent_fuzz",
        "call_type": "phone_call",
        "to_number": target.salon.phone_number,
        "from_number": f"+49151{uuid.uuid4().int % 10**8:08d}",
        "direction": "inbound",
        **extra,
    }


def wrapped(target: Target, args: Any, **call: Any) -> bytes:
    body = {"call": call_of(target, **call), "name": "book_appointment", "args": args}
    return json.dumps(body).encode()


def args_variants(new: Any) -> list[Any]:
    return one_string_at_a_time(VALID_ARGS, new)


# Raw bodies sent to `?company_id=` (Retell's "args only" mode): the signature is checked with
# the company's key, then the body is all the agent function has to go on.
RAW_RETELL_BODIES: dict[str, bytes] = {
    "not_json": b"this is not json",
    "empty": b"",
    "binary_garbage": bytes(range(256)),
    "json_array": b"[1, 2, 3]",
    "json_null": b"null",
    "json_string": b'"book me"',
    "json_number": b"42",
    "deeply_nested_object": nested(DEEP).encode(),
    "deeply_nested_array": b"[" * DEEP + b"]" * DEEP,
    "invalid_utf8": b'{"service": "\xff\xfe"}',
    "lone_surrogate": b'{"service": "a\\ud800", "date": "2026-03-03", "time": "10:00"}',
    "nan": b'{"service": NaN, "date": Infinity, "time": -Infinity}',
    "too_many_digits": b'{"service": ' + b"9" * 5000 + b"}",
    "huge_string": json.dumps({"service": HUGE, "customer_name": HUGE}).encode(),
    "args_at_root": json.dumps(VALID_ARGS).encode(),
}


@pytest.mark.parametrize("name", list(RAW_RETELL_BODIES))
async def test_signed_garbage_retell_body_is_answered_not_crashed(
    services: Services, shared_target: Target, name: str
) -> None:
    raw_body, headers = signed(RAW_RETELL_BODIES[name])
    response = await services.clients["booking"].post(
        f"{BOOK}?company_id={shared_target.company_id}", content=raw_body, headers=headers
    )
    assert_agent_answer(response, name)


def assert_agent_answer(response: httpx.Response, what: str) -> None:
    """No 5xx; a refusal is problem+json; a 200 is an answer the agent can read out."""
    __tracebackhide__ = True
    assert_no_server_error(response, what)
    if response.status_code == 200:
        body = response.json()
        assert isinstance(body.get("status"), str), (what, body)
        assert isinstance(body.get("message"), str) and body["message"].strip(), (what, body)


# Wrapped calls ({"call", "name", "args"}) whose args or call are garbage.
RETELL_CALLS: dict[str, Any] = {
    "args_array": lambda t: [wrapped(t, [VALID_ARGS])],
    "args_string": lambda t: [wrapped(t, "book me at ten")],
    "args_null": lambda t: [wrapped(t, None)],
    "args_number": lambda t: [wrapped(t, 42)],
    "args_empty": lambda t: [wrapped(t, {})],
    "impossible_date": lambda t: [wrapped(t, {**VALID_ARGS, "date": "2026-02-30"})],
    "time_24_00": lambda t: [wrapped(t, {**VALID_ARGS, "time": "24:00"})],
    "time_23_60": lambda t: [wrapped(t, {**VALID_ARGS, "time": "23:60"})],
    "time_99": lambda t: [wrapped(t, {**VALID_ARGS, "time": "99"})],
    "time_many_digits": lambda t: [wrapped(t, {**VALID_ARGS, "time": "9" * 19 + ":00"})],
    "first_day": lambda t: [wrapped(t, {**VALID_ARGS, "date": "0001-01-01", "time": "00:00"})],
    "last_day": lambda t: [wrapped(t, {**VALID_ARGS, "date": "9999-12-31", "time": "23:59"})],
    "dst_gap": lambda t: [wrapped(t, {**VALID_ARGS, "date": "2027-03-28", "time": "02:30"})],
    "huge_strings": lambda t: [wrapped(t, a) for a in args_variants(HUGE)],
    "numbers_for_strings": lambda t: [wrapped(t, a) for a in args_variants(4917012345)],
    "floats_for_strings": lambda t: [wrapped(t, a) for a in args_variants(1e308)],
    "objects_for_strings": lambda t: [wrapped(t, a) for a in args_variants({"a": [1]})],
    "arrays_for_strings": lambda t: [wrapped(t, a) for a in args_variants(["x", 1])],
    "booleans_for_strings": lambda t: [wrapped(t, a) for a in args_variants(True)],
    "nul_characters": lambda t: [wrapped(t, a) for a in args_variants("a\x00b")],
    "lone_surrogates": lambda t: [
        wrapped(t, a).replace(b'"@@SPLICE@@"', rb'"a\ud800b"') for a in args_variants("@@SPLICE@@")
    ],
    "lone_surrogate_keys": lambda t: [
        wrapped(t, {**VALID_ARGS, "@@SPLICE@@": 1}).replace(b'"@@SPLICE@@"', rb'"\udfff"')
    ],
    "moderately_nested_args": lambda t: [
        wrapped(t, a) for a in args_variants(json.loads(nested(400)))
    ],
    "args_nested_near_the_recursion_limit": lambda t: [
        wrapped(t, a).replace(b'"@@SPLICE@@"', nested(depth).encode())
        for depth in (20, 40, 800, 950)
        for a in args_variants("@@SPLICE@@")
    ],
    "call_id_lone_surrogate": lambda t: [
        wrapped(t, VALID_ARGS, call_id="@@SPLICE@@").replace(b'"@@SPLICE@@"', rb'"\ud800"'),
        wrapped(t, VALID_ARGS, agent_id="@@SPLICE@@").replace(b'"@@SPLICE@@"', rb'"\ud800"'),
    ],
    "call_array": lambda t: [
        json.dumps({"call": [], "name": "book_appointment", "args": VALID_ARGS}).encode()
    ],
    "call_garbage_numbers": lambda t: [
        wrapped(t, VALID_ARGS, from_number={"a": 1}, call_id=["x"]),
        wrapped(t, VALID_ARGS, from_number=HUGE, call_id=HUGE),
        wrapped(t, VALID_ARGS, from_number=4917012345, call_id=12),
        wrapped(t, VALID_ARGS, from_number="+49 170 1234567 ext. 9999999999"),
    ],
}


@pytest.mark.parametrize("name", list(RETELL_CALLS))
async def test_signed_garbage_retell_call_is_answered_not_crashed(
    services: Services, shared_target: Target, name: str
) -> None:
    for raw_body in RETELL_CALLS[name](shared_target):
        body, headers = signed(raw_body)
        response = await services.clients["booking"].post(BOOK, content=body, headers=headers)
        assert_agent_answer(response, f"{name} {raw_body[:200]!r}")


UNSIGNED_OR_BADLY_SIGNED: dict[str, tuple[bytes, dict[str, str]]] = {
    "no_signature": (b"{}", JSON),
    "deeply_nested_unsigned": (nested(DEEP).encode(), JSON),
    "deeply_nested_badly_signed": (nested(DEEP).encode(), {"X-Retell-Signature": "v=1,d=00"}),
    "garbage_signature": (b"{}", {"X-Retell-Signature": "garbage"}),
    "signature_10k": (b"{}", {"X-Retell-Signature": LONG_ID}),
    "timestamp_5000_digits": (b"{}", {"X-Retell-Signature": "v=" + "9" * 5000 + ",d=" + "0" * 64}),
    "timestamp_4000_digits": (b"{}", {"X-Retell-Signature": "v=" + "9" * 4000 + ",d=" + "0" * 64}),
    "signature_latin1": (b"{}", {"X-Retell-Signature": "v=\xff,d=\xfe"}),
}


@pytest.mark.parametrize("name", list(UNSIGNED_OR_BADLY_SIGNED))
async def test_unsigned_retell_call_is_401_problem(
    services: Services, shared_target: Target, name: str
) -> None:
    body, headers = UNSIGNED_OR_BADLY_SIGNED[name]
    for path in (BOOK, f"{BOOK}?company_id={shared_target.company_id}", "/v1/retell/inbound"):
        response = await services.clients["booking"].post(
            path, content=body, headers={k: v.encode("latin-1") for k, v in headers.items()}
        )
        assert_no_server_error(response, f"{name} {path}")
        assert response.status_code == 401, response.text


AGENT_FUNCTIONS = [
    "check_availability",
    "book_appointment",
    "cancel_appointment",
    "reschedule_appointment",
    "list_appointments",
    "request_callback",
]
DAY_AND_TIME = {
    "first_day": ("0001-01-01", "00:00"),
    "last_day": ("9999-12-31", "23:59"),
    "first_accepted_day": ("1900-01-01", "00:00"),
    "last_accepted_day": ("9998-12-31", "23:59"),
    "impossible_date": ("2026-02-30", "10:00"),
    "hour_24": (FUTURE, "24:00"),
    "dst_gap": ("2027-03-28", "02:30"),
    "not_a_date": ("morgen", "halb zehn"),
}


@pytest.mark.parametrize("moment", list(DAY_AND_TIME))
@pytest.mark.parametrize("function", AGENT_FUNCTIONS)
async def test_every_agent_function_survives_impossible_dates(
    services: Services, shared_target: Target, function: str, moment: str
) -> None:
    day, at = DAY_AND_TIME[moment]
    args = {
        **VALID_ARGS,
        "date": day,
        "time": at,
        "new_date": day,
        "new_time": at,
        "reason": "Fuzz",
        "preferred_time": at,
    }
    payload = {"call": call_of(shared_target), "name": function, "args": args}
    body, headers = signed(payload)
    response = await services.clients["booking"].post(
        f"/v1/retell/functions/{function}", content=body, headers=headers
    )
    assert_no_server_error(response, f"{function} {moment}")
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("company", [LONG_ID, "\xff\xfe", " ", "%00", "' OR 1=1 --"])
async def test_platform_key_with_garbage_company_header_is_refused(
    services: Services, db: Database, company: str
) -> None:
    platform = await create_platform_key(db)
    headers = {"Authorization": f"Bearer {platform}", "X-Company-ID": company}
    for service, path in (("booking", "/v1/appointments"), ("policy", "/v1/policies/effective")):
        response = await services.clients[service].get(
            path, headers={k: v.encode("latin-1") for k, v in headers.items()}
        )
        assert_no_server_error(response, f"X-Company-ID {company[:20]!r}")
        assert response.status_code in (401, 404), response.text
