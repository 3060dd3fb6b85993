"""A fake Cal.com API v2 for tests and the load run, strict about our side of the contract.

It answers the booking and slot paths we use with the shapes of the OpenAPI document in
`contracts/calcom/openapi-v2.json`, validates every request against that document (headers,
query, body; see `Contract`), and has switches that make it fail like the real one does.

In the test process (uvicorn in a background thread)::

    async with FakeCalcom() as fake:
        fake.add_event_type(1, 30, "host@example.com")
        fake.control(status_override=503, times=2)   # the next two /v2 requests answer 503
        ... CalcomClient(base_url=fake.url, ...) ...
        assert fake.violations == []

From another OS process (e.g. an `arq` worker under test) run it as a subprocess::

    python -m tests.support.fake_calcom --port 8765 --event-type 1:30:host@example.com

or `async with FakeCalcomProcess(event_types=[(1, 30, "host@example.com")]) as fake:`; it is
driven over HTTP: `POST /_fake/control` (the switch JSON below), `GET /_fake/state`
(bookings, call counts, violations), `POST /_fake/reset`, `POST /_fake/event_types`.

Switches (each optionally for the next `times` matching requests, optionally only for
`match` = "METHOD /template", e.g. "POST /v2/bookings"):
- `down`: the connection is reset without an answer (nothing is performed);
- `slow_s`: sleep before doing anything;
- `status_override`: answer this status instead (429 carries `X-RateLimit-*-Default`
  headers and no Retry-After, as Cal.com does; `rate_limit_reset_s` sets the reset value);
- `commit_then_reset`: perform the write (create/cancel/reschedule), then reset the connection;
- `delay_after_commit_s`: perform the write, then sleep before answering.

Counters: `calls` counts every /v2 request that reached the app ("METHOD /template"),
`performed` the writes actually applied, `refused` the requests dropped by `down`.

Changes made in Cal.com itself (not through our API, so not counted): `fake.book(...)`,
`fake.cancel(uid)`, or `POST /_fake/bookings` (a create body) and
`POST /_fake/bookings/{uid}/cancel` for the subprocess. With `api_keys` set, any other key
gets 401 (as Cal.com's ApiAuthGuard); with none set, any Bearer key is accepted.
The subprocess must be started from the repository root (`tests` is imported as a package).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import itertools
import json
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import jsonschema_rs
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from tests.support.contracts import CALCOM
from tests.support.threaded_server import ThreadedServer

ROOT = Path(__file__).resolve().parents[2]
OPENAPI = CALCOM / "openapi-v2.json"
SLOT_TAKEN = "User either already has booking at this time or is not available"
WRITE_OPS = frozenset(
    {"POST /v2/bookings", "POST /v2/bookings/{uid}/cancel", "POST /v2/bookings/{uid}/reschedule"}
)
SWITCHES = ("down", "slow_s", "status_override", "commit_then_reset", "delay_after_commit_s")
# Our templates (as in metrics) -> the OpenAPI path of the operation.
OPENAPI_PATHS = {
    "/v2/bookings": "/v2/bookings",
    "/v2/bookings/{uid}": "/v2/bookings/{bookingUid}",
    "/v2/bookings/{uid}/cancel": "/v2/bookings/{bookingUid}/cancel",
    "/v2/bookings/{uid}/reschedule": "/v2/bookings/{bookingUid}/reschedule",
    "/v2/slots": "/v2/slots",
}


# -- the contract ------------------------------------------------------------------------


def _any_of(node: Any) -> Any:
    """oneOf -> anyOf: Cal.com's bodies match several branches (a plain create is also a valid
    recurring one), so a strict oneOf would refuse every valid request."""
    if isinstance(node, dict):
        return {("anyOf" if k == "oneOf" else k): _any_of(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_any_of(v) for v in node]
    return node


class Contract:
    """The OpenAPI document as a validator of our requests and of the fake's answers."""

    def __init__(self, path: Path = OPENAPI) -> None:
        self.doc: dict[str, Any] = json.loads(path.read_text())
        self.components = _any_of(self.doc["components"])

    def operation(self, method: str, template: str) -> dict[str, Any]:
        return self.doc["paths"][OPENAPI_PATHS[template]][method.lower()]  # type: ignore[no-any-return]

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref")
        if isinstance(ref, str):
            return self._resolve(self.components["schemas"][ref.rsplit("/", 1)[-1]])
        return schema

    @cache  # noqa: B019 - one Contract per process
    def _body_validators(self, method: str, template: str) -> tuple[Any, ...]:
        body = self.operation(method, template).get("requestBody")
        if body is None:
            return ()
        schema = body["content"]["application/json"]["schema"]
        branches = schema.get("oneOf") or [schema]
        validators = []
        for branch in branches:
            strict = dict(self._resolve(branch))
            # Unknown top-level fields are refused: a typo must not pass silently.
            strict["additionalProperties"] = False
            strict["components"] = self.components
            validators.append(jsonschema_rs.validator_for(strict))
        return tuple(validators)

    def check_request(
        self,
        method: str,
        template: str,
        headers: dict[str, str],
        query: list[tuple[str, str]],
        body: Any,
        body_raw: bytes,
    ) -> list[str]:
        """Everything wrong with our request per the document (empty: conforming)."""
        problems: list[str] = []
        operation = self.operation(method, template)
        known: set[str] = set()
        for param in operation.get("parameters", []):
            name, where, schema = param["name"], param["in"], param.get("schema") or {}
            if where == "header":
                value = headers.get(name.lower())
                if name == "cal-api-version":
                    if value != schema.get("default"):
                        problems.append(
                            f"header cal-api-version must be {schema.get('default')!r}, "
                            f"got {value!r}"
                        )
                elif param.get("required") and value is None:
                    problems.append(f"missing required header {name}")
            elif where == "query":
                known.add(name)
                values = [v for k, v in query if k == name]
                if param.get("required") and not values:
                    problems.append(f"missing required query parameter {name}")
                problems.extend(_query_problems(name, values, schema))
        problems.extend(f"unknown query parameter {k}" for k, _ in query if k not in known)
        if template.startswith("/v2/bookings"):
            auth = headers.get("authorization", "")
            if not auth.startswith("Bearer ") or len(auth) <= len("Bearer "):
                problems.append("missing Authorization: Bearer <api key>")
        validators = self._body_validators(method, template)
        if validators:
            if not body_raw:
                problems.append("missing JSON body")
            elif body is _INVALID_JSON:
                problems.append("body is not JSON")
            elif not any(v.is_valid(body) for v in validators):
                problems.extend(f"body: {e.message}" for e in validators[0].iter_errors(body))
        return problems

    def response_problems(self, schema_name: str, body: Any) -> list[str]:
        """How `body` departs from the named response schema (used by the fake's own tests)."""
        schema = dict(self.components["schemas"][schema_name])
        schema["components"] = self.components
        return [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(body)]


def _query_problems(name: str, values: list[str], schema: dict[str, Any]) -> list[str]:
    problems = []
    for value in values:
        items = value.split(",") if schema.get("type") == "array" else [value]
        enum = (schema.get("items") or {}).get("enum") or schema.get("enum")
        for item in items:
            if enum and item not in enum:
                problems.append(f"query {name}={item!r} not one of {enum}")
        if schema.get("type") == "number":
            try:
                float(value)
            except ValueError:
                problems.append(f"query {name}={value!r} is not a number")
    if name == "bookingUidToReschedule":
        # Cal.com looks the uid up; an empty or repeated one is a bug of ours, not a request.
        if len(values) > 1:
            problems.append(f"query {name} given {len(values)} times")
        problems.extend(f"query {name}={v!r} is not a booking uid" for v in values if not v.strip())
    if name in {"afterStart", "beforeEnd", "afterUpdatedAt", "beforeUpdatedAt"}:
        for value in values:
            if _parse_instant(value) is None:
                problems.append(f"query {name}={value!r} is not an ISO 8601 instant")
    return problems


_INVALID_JSON = object()


# -- state -------------------------------------------------------------------------------


@dataclass
class EventType:
    id: int
    length_minutes: int
    host_email: str
    time_zone: str = "UTC"
    # Working window per day in `time_zone`; None = the whole day, every day.
    hours: tuple[dtime, dtime] | None = None
    weekdays: frozenset[int] = frozenset(range(7))


@dataclass
class Switch:
    value: Any
    times: int | None
    match: str | None


@dataclass
class FakeState:
    """Everything the fake knows; guarded by `lock` (the server runs in another thread)."""

    event_types: dict[int, EventType] = field(default_factory=dict)
    bookings: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    performed: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    violations: list[dict[str, Any]] = field(default_factory=list)
    # The query of every conforming GET /v2/slots, in order (what our lookups asked for).
    slot_queries: list[dict[str, str]] = field(default_factory=list)
    switches: dict[str, Switch] = field(default_factory=dict)
    api_keys: set[str] = field(default_factory=set)
    rate_limit_reset_s: int = 7
    lock: threading.RLock = field(default_factory=threading.RLock)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1001))

    def control(self, spec: dict[str, Any]) -> None:
        """Apply a control JSON: switches (falsy value clears), `times`, `match`, `clear`."""
        with self.lock:
            if spec.get("clear"):
                self.switches.clear()
            times, match = spec.get("times"), spec.get("match")
            for name in SWITCHES:
                if name in spec:
                    if spec[name] in (None, False, 0):
                        self.switches.pop(name, None)
                    else:
                        self.switches[name] = Switch(spec[name], times, match)
            if "rate_limit_reset_s" in spec:
                self.rate_limit_reset_s = int(spec["rate_limit_reset_s"])
            if "api_keys" in spec:
                self.api_keys = set(spec["api_keys"] or ())

    def take(self, name: str, op: str) -> Any:
        """The switch's value if it applies to this request (and use one of its `times`)."""
        with self.lock:
            switch = self.switches.get(name)
            if switch is None or (switch.match is not None and switch.match != op):
                return None
            if name in ("commit_then_reset", "delay_after_commit_s") and op not in WRITE_OPS:
                return None
            if switch.times is not None:
                switch.times -= 1
                if switch.times <= 0:
                    del self.switches[name]
            return switch.value

    def reset(self) -> None:
        """Forget bookings, counters, violations and switches (event types and keys stay)."""
        with self.lock:
            self.bookings.clear()
            self.calls.clear()
            self.performed.clear()
            self.refused = 0
            self.violations.clear()
            self.slot_queries.clear()
            self.switches.clear()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "bookings": copy.deepcopy(self.bookings),
                "calls": dict(self.calls),
                "performed": dict(self.performed),
                "refused": self.refused,
                "violations": copy.deepcopy(self.violations),
                "slot_queries": copy.deepcopy(self.slot_queries),
                "switches": {k: vars(v) for k, v in self.switches.items()},
            }


# -- Cal.com behaviour -------------------------------------------------------------------


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _error(status: int, message: str, code: str = "BAD_REQUEST") -> JSONResponse:
    body = {
        "status": "error",
        "timestamp": _iso(datetime.now(UTC)),
        "path": "",
        "error": {"code": code, "message": message},
    }
    return JSONResponse(body, status_code=status)


def _ok(data: Any, status: int = 200, **extra: Any) -> JSONResponse:
    return JSONResponse({"status": "success", "data": data, **extra}, status_code=status)


def _host(event_type: EventType) -> dict[str, Any]:
    username = event_type.host_email.split("@", 1)[0]
    return {
        "id": abs(hash(event_type.host_email)) % 100_000,
        "name": username.title(),
        "email": event_type.host_email,
        "username": username,
        "timeZone": event_type.time_zone,
    }


def _within_hours(event_type: EventType, start: datetime, end: datetime) -> bool:
    if event_type.hours is None:
        return True
    tz = ZoneInfo(event_type.time_zone)
    local_start, local_end = start.astimezone(tz), end.astimezone(tz)
    open_at, close_at = event_type.hours
    return (
        local_start.date() == (local_end - timedelta(microseconds=1)).date()
        and local_start.weekday() in event_type.weekdays
        and local_start.time() >= open_at
        and (local_end.time() <= close_at or local_end.time() == dtime(0))
    )


class Calendar:
    """Cal.com's booking rules over a FakeState (call with the state's lock held)."""

    def __init__(self, state: FakeState) -> None:
        self.state = state

    def host_busy(
        self, host_email: str, start: datetime, end: datetime, ignore_uid: str | None = None
    ) -> bool:
        for booking in self.state.bookings.values():
            if booking["uid"] == ignore_uid or booking["status"] not in ("accepted", "pending"):
                continue
            if all(h["email"] != host_email for h in booking["hosts"]):
                continue
            if _parse_instant(booking["start"]) < end and start < _parse_instant(booking["end"]):  # type: ignore[operator]
                return True
        return False

    def new_booking(
        self,
        event_type: EventType,
        start: datetime,
        minutes: int,
        attendee: dict[str, Any],
        metadata: dict[str, Any],
        rescheduled_from: str | None = None,
    ) -> dict[str, Any]:
        now = _iso(datetime.now(UTC))
        end = start + timedelta(minutes=minutes)
        booking_attendee = {
            "name": attendee.get("name"),
            "email": attendee.get("email") or "",
            "timeZone": attendee.get("timeZone"),
            "language": attendee.get("language", "en"),
            "absent": False,
        }
        if attendee.get("phoneNumber"):
            booking_attendee["phoneNumber"] = attendee["phoneNumber"]
        booking: dict[str, Any] = {
            "id": next(self.state.ids),
            "uid": uuid.uuid4().hex[:22],
            "title": f"Event {event_type.id} between host and {attendee.get('name')}",
            "description": "",
            "hosts": [_host(event_type)],
            "status": "accepted",
            "start": _iso(start),
            "end": _iso(end),
            "duration": minutes,
            "eventTypeId": event_type.id,
            "eventType": {"id": event_type.id, "slug": f"event-{event_type.id}"},
            "location": "integrations:daily",
            "absentHost": False,
            "createdAt": now,
            "updatedAt": now,
            "metadata": dict(metadata),
            "attendees": [booking_attendee],
            "guests": [],
            "bookingFieldsResponses": {"name": attendee.get("name")},
        }
        if rescheduled_from:
            booking["rescheduledFromUid"] = rescheduled_from
        self.state.bookings[booking["uid"]] = booking
        return booking


def _metadata_problem(metadata: Any) -> str | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or len(metadata) > 50:
        return "metadata must be an object with at most 50 keys"
    for key, value in metadata.items():
        if len(key) > 40 or not isinstance(value, str) or len(value) > 500:
            return "metadata keys up to 40 characters, string values up to 500 characters"
    return None


class FakeCalcomApp:
    """The ASGI app: Cal.com's paths, the contract check and the switches around them."""

    def __init__(self, state: FakeState, contract: Contract | None = None) -> None:
        self.state = state
        self.contract = contract or _contract()
        self.calendar = Calendar(state)
        api = [
            ("POST", "/v2/bookings", self._create),
            ("GET", "/v2/bookings", self._list),
            ("GET", "/v2/bookings/{uid}", self._get),
            ("POST", "/v2/bookings/{uid}/cancel", self._cancel),
            ("POST", "/v2/bookings/{uid}/reschedule", self._reschedule),
            ("GET", "/v2/slots", self._slots),
        ]
        routes = [
            Route(template, self._endpoint(method, template, handler), methods=[method])
            for method, template, handler in api
        ]
        routes += [
            Route("/_fake/state", self._state, methods=["GET"]),
            Route("/_fake/control", self._control, methods=["POST"]),
            Route("/_fake/reset", self._reset, methods=["POST"]),
            Route("/_fake/event_types", self._event_types, methods=["POST"]),
            Route("/_fake/bookings", self._direct_book, methods=["POST"]),
            Route("/_fake/bookings/{uid}/cancel", self._direct_cancel, methods=["POST"]),
        ]
        self.app = Starlette(routes=routes)

    def _endpoint(self, method: str, template: str, handler: Any) -> Any:
        op = f"{method} {template}"

        async def endpoint(request: Request) -> Response:
            state = self.state
            raw = await request.body()
            body: Any = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = _INVALID_JSON
            headers = {k.lower(): v for k, v in request.headers.items()}
            query = list(request.query_params.multi_items())
            problems = self.contract.check_request(method, template, headers, query, body, raw)
            if problems:
                with state.lock:
                    state.violations.append(
                        {"op": op, "path": request.url.path, "problems": problems}
                    )
            if state.take("down", op):
                with state.lock:
                    state.refused += 1
                return await _drop(request)
            with state.lock:
                state.calls[op] += 1
            if problems:
                return _error(400, "; ".join(problems))
            key = headers.get("authorization", "").removeprefix("Bearer ")
            if state.api_keys and template != "/v2/slots" and key not in state.api_keys:
                return _error(401, "ApiAuthGuard - Invalid API Key", "UnauthorizedException")
            slow = state.take("slow_s", op)
            if slow:
                await asyncio.sleep(float(slow))
            override = state.take("status_override", op)
            if override:
                return self._override(int(override))
            with state.lock:
                response: Response = handler(request.path_params, body, dict(query))
                if op in WRITE_OPS and response.status_code < 300:
                    state.performed[op] += 1
            if op in WRITE_OPS and response.status_code < 300:
                if state.take("commit_then_reset", op):
                    return await _drop(request)
                delay = state.take("delay_after_commit_s", op)
                if delay:
                    await asyncio.sleep(float(delay))
            return response

        return endpoint

    def _override(self, status: int) -> Response:
        if status == 429:
            response = _error(
                429, "ThrottlerException: Too Many Requests", "TooManyRequestsException"
            )
            response.headers["X-RateLimit-Limit-Default"] = "120"
            response.headers["X-RateLimit-Remaining-Default"] = "0"
            response.headers["X-RateLimit-Reset-Default"] = str(self.state.rate_limit_reset_s)
            return response
        if status in (502, 503, 504):
            return Response(
                f"<html><body>{status} Bad Gateway</body></html>", status, media_type="text/html"
            )
        return _error(status, "Internal server error", "INTERNAL_SERVER_ERROR")

    # -- bookings ------------------------------------------------------------------------

    def _create(self, _path: dict[str, Any], body: dict[str, Any], _q: dict[str, str]) -> Response:
        event_type = self.state.event_types.get(int(body.get("eventTypeId") or 0))
        if event_type is None:
            return _error(
                404, f"Event type with id={body.get('eventTypeId')} not found", "NOT_FOUND"
            )
        start = _parse_instant(body["start"])
        if start is None:
            return _error(400, "start must be an ISO 8601 date string")
        problem = _metadata_problem(body.get("metadata"))
        if problem:
            return _error(400, problem)
        minutes = int(body.get("lengthInMinutes") or event_type.length_minutes)
        end = start + timedelta(minutes=minutes)
        if not _within_hours(event_type, start, end) or self.calendar.host_busy(
            event_type.host_email, start, end
        ):
            return _error(400, SLOT_TAKEN)
        booking = self.calendar.new_booking(
            event_type, start, minutes, body["attendee"], body.get("metadata") or {}
        )
        return _ok(booking, 201)

    def _get(self, path: dict[str, Any], _body: Any, _q: dict[str, str]) -> Response:
        booking = self.state.bookings.get(path["uid"])
        if booking is None:
            return _error(404, f"Booking with uid={path['uid']} was not found", "NOT_FOUND")
        return _ok(booking)

    def _cancel(self, path: dict[str, Any], body: dict[str, Any], _q: dict[str, str]) -> Response:
        booking = self.state.bookings.get(path["uid"])
        if booking is None:
            return _error(404, f"Booking with uid={path['uid']} was not found", "NOT_FOUND")
        if booking["status"] == "cancelled":
            return _error(400, "This booking has already been cancelled.")
        booking["status"] = "cancelled"
        if body.get("cancellationReason"):
            booking["cancellationReason"] = body["cancellationReason"]
        booking["updatedAt"] = _iso(datetime.now(UTC))
        return _ok(booking)

    def _reschedule(
        self, path: dict[str, Any], body: dict[str, Any], _q: dict[str, str]
    ) -> Response:
        old = self.state.bookings.get(path["uid"])
        if old is None:
            return _error(404, f"Booking with uid={path['uid']} was not found", "NOT_FOUND")
        if old["status"] == "cancelled":
            return _error(400, "Can't reschedule a cancelled booking")
        event_type = self.state.event_types[old["eventTypeId"]]
        start = _parse_instant(body["start"])
        if start is None:
            return _error(400, "start must be an ISO 8601 date string")
        end = start + timedelta(minutes=old["duration"])
        if not _within_hours(event_type, start, end) or self.calendar.host_busy(
            event_type.host_email, start, end, ignore_uid=old["uid"]
        ):
            return _error(400, SLOT_TAKEN)
        new = self.calendar.new_booking(
            event_type, start, old["duration"], old["attendees"][0], old["metadata"], old["uid"]
        )
        old["status"] = "cancelled"
        old["rescheduledToUid"] = new["uid"]
        if body.get("reschedulingReason"):
            old["reschedulingReason"] = body["reschedulingReason"]
        old["updatedAt"] = _iso(datetime.now(UTC))
        return _ok(new, 201)

    def _list(self, _path: dict[str, Any], _body: Any, q: dict[str, str]) -> Response:
        now = datetime.now(UTC)
        rows = list(self.state.bookings.values())

        for param, attr, lower in (
            ("afterStart", "start", True),
            ("beforeEnd", "end", False),
            ("afterUpdatedAt", "updatedAt", True),
            ("beforeUpdatedAt", "updatedAt", False),
        ):
            bound = _parse_instant(q.get(param))
            if bound is not None:
                rows = [b for b in rows if _in_bound(b[attr], bound, lower)]
        if "eventTypeId" in q:
            rows = [b for b in rows if str(b["eventTypeId"]) == q["eventTypeId"]]
        if "status" in q:
            wanted = set(q["status"].split(","))
            rows = [b for b in rows if _status_tags(b, now) & wanted]
        for key in ("sortStart", "sortEnd", "sortCreated", "sortUpdatedAt"):
            if key in q:
                attr = {"sortStart": "start", "sortEnd": "end", "sortCreated": "createdAt"}.get(
                    key, "updatedAt"
                )
                rows.sort(key=lambda b: b[attr], reverse=q[key] == "desc")
                break
        else:
            rows.sort(key=lambda b: (b["start"], b["id"]))
        take, skip = int(float(q.get("take", 100))), int(float(q.get("skip", 0)))
        page = rows[skip : skip + take]
        total = len(rows)
        pagination = {
            "totalItems": total,
            "remainingItems": max(total - (skip + len(page)), 0),
            "returnedItems": len(page),
            "itemsPerPage": take,
            "currentPage": skip // take + 1 if take else 1,
            "totalPages": -(-total // take) if take else 0,
            "hasNextPage": skip + len(page) < total,
            "hasPreviousPage": skip > 0,
        }
        return _ok(page, pagination=pagination)

    # -- slots ---------------------------------------------------------------------------

    def _slots(self, _path: dict[str, Any], _body: Any, q: dict[str, str]) -> Response:
        self.state.slot_queries.append(dict(q))
        event_type = self.state.event_types.get(int(float(q.get("eventTypeId") or 0)))
        if event_type is None:
            return _error(404, f"Event type with id={q.get('eventTypeId')} not found", "NOT_FOUND")
        # The booking being rescheduled does not block (Cal.com offers its own time back); an
        # unknown uid excludes nothing.
        moving = q.get("bookingUidToReschedule")
        tz = ZoneInfo(q.get("timeZone") or "UTC")
        first, last = _slot_bound(q["start"], tz, False), _slot_bound(q["end"], tz, True)
        step = timedelta(minutes=int(float(q.get("duration") or event_type.length_minutes)))
        days: dict[str, list[dict[str, str]]] = {}
        now = datetime.now(UTC)
        for start in _candidate_starts(event_type, first, last, step):
            end = start + step
            if start < now or self.calendar.host_busy(event_type.host_email, start, end, moving):
                continue
            local = start.astimezone(tz)
            slot = {"start": local.isoformat(timespec="milliseconds")}
            if q.get("format") == "range":
                slot["end"] = end.astimezone(tz).isoformat(timespec="milliseconds")
            days.setdefault(local.date().isoformat(), []).append(slot)
        return _ok(days)

    # -- control -------------------------------------------------------------------------

    async def _state(self, _request: Request) -> Response:
        return JSONResponse(self.state.snapshot())

    async def _control(self, request: Request) -> Response:
        self.state.control(await request.json())
        return JSONResponse({"switches": self.state.snapshot()["switches"]})

    async def _reset(self, _request: Request) -> Response:
        self.state.reset()
        return JSONResponse({"reset": True})

    async def _event_types(self, request: Request) -> Response:
        spec = await request.json()
        with self.state.lock:
            self.state.event_types[int(spec["id"])] = _event_type_from_json(spec)
        return JSONResponse({"id": int(spec["id"])}, status_code=201)

    async def _direct_book(self, request: Request) -> Response:
        spec = await request.json()
        with self.state.lock:
            response = self._create({}, spec, {})
        return response

    async def _direct_cancel(self, request: Request) -> Response:
        with self.state.lock:
            return self._cancel(dict(request.path_params), await request.json(), {})


def _in_bound(value: str, bound: datetime, lower: bool) -> bool:
    instant = _parse_instant(value)
    assert instant is not None
    return instant >= bound if lower else instant <= bound


def _status_tags(booking: dict[str, Any], now: datetime) -> set[str]:
    status = booking["status"]
    if status in ("cancelled", "rejected"):
        return {"cancelled"}
    tags = {"unconfirmed"} if status == "pending" else set()
    tags.add("past" if _parse_instant(booking["end"]) < now else "upcoming")  # type: ignore[operator]
    return tags


def _slot_bound(value: str, tz: ZoneInfo, end: bool) -> datetime:
    """A slots `start`/`end`: a date is the start (end: the end) of that day in `timeZone`."""
    if len(value) == 10:
        day = date.fromisoformat(value)
        moment = datetime.combine(day + timedelta(days=1) if end else day, dtime(0), tz)
        return moment.astimezone(UTC)
    parsed = _parse_instant(value)
    if parsed is None:
        raise ValueError(f"bad slots bound {value!r}")
    return parsed


def _candidate_starts(
    event_type: EventType, first: datetime, last: datetime, step: timedelta
) -> list[datetime]:
    tz = ZoneInfo(event_type.time_zone)
    day = first.astimezone(tz).date() - timedelta(days=1)
    starts: list[datetime] = []
    while datetime.combine(day, dtime(0), tz) < last:
        if day.weekday() in event_type.weekdays:
            open_at, close_at = event_type.hours or (dtime(0), None)
            cursor = datetime.combine(day, open_at, tz).astimezone(UTC)
            closing = (
                datetime.combine(day, close_at, tz)
                if close_at is not None
                else datetime.combine(day + timedelta(days=1), dtime(0), tz)
            ).astimezone(UTC)
            while cursor + step <= closing:
                if first <= cursor and cursor + step <= last:
                    starts.append(cursor)
                cursor += step
        day += timedelta(days=1)
    return starts


def _event_type_from_json(spec: dict[str, Any]) -> EventType:
    hours = spec.get("hours")
    return EventType(
        id=int(spec["id"]),
        length_minutes=int(spec["length_minutes"]),
        host_email=str(spec["host_email"]),
        time_zone=spec.get("time_zone") or "UTC",
        hours=(dtime.fromisoformat(hours[0]), dtime.fromisoformat(hours[1])) if hours else None,
        weekdays=frozenset(spec.get("weekdays") or range(7)),
    )


@cache
def _contract() -> Contract:
    return Contract()


# -- dropping connections ----------------------------------------------------------------

_TRANSPORTS: dict[tuple[Any, ...], asyncio.Transport] = {}


def _peer_key(client: Any, server: Any) -> tuple[Any, ...]:
    return (*(client or ()), *(server or ()))


class _TrackingH11(H11Protocol):
    """uvicorn's h11 protocol, remembering each connection's transport so the app can reset it
    (the ASGI scope offers no way to drop a connection without an answer)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _TRANSPORTS[_peer_key(self.client, self.server)] = transport

    def connection_lost(self, exc: Exception | None) -> None:
        _TRANSPORTS.pop(_peer_key(self.client, self.server), None)
        super().connection_lost(exc)


class _NoAnswer(Response):
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        return None


async def _drop(request: Request) -> Response:
    """Reset the connection (RST, no answer) as a crashed or unreachable Cal.com would."""
    transport = _TRANSPORTS.get(_peer_key(request.scope.get("client"), request.scope.get("server")))
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        await asyncio.sleep(0.01)  # let uvicorn see the disconnect before the app returns
    return _NoAnswer()


# -- runners -----------------------------------------------------------------------------


def _bind(port: int = 0) -> socket.socket:
    # proto must be IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only then, and
    # without it Nagle + delayed ACK add 40 ms to every answer (headers and body are 2 writes).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def _config(app: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app, http=_TrackingH11, log_level="warning", access_log=False, lifespan="off"
    )


class FakeCalcom:
    """The fake served by uvicorn in a background thread of this process."""

    def __init__(self, *, api_keys: Iterable[str] = ()) -> None:
        self.state = FakeState(api_keys=set(api_keys))
        self.asgi = FakeCalcomApp(self.state)
        self._runner = ThreadedServer(_config(self.asgi.app), "fake Cal.com")
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        sock = _bind()
        self.port = sock.getsockname()[1]
        self._runner.start(sock)

    def stop(self) -> None:
        self._runner.stop()

    async def __aenter__(self) -> FakeCalcom:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    # -- configuration and inspection (thread-safe) --------------------------------------

    def add_event_type(
        self,
        id: int,
        length_minutes: int,
        host_email: str,
        *,
        time_zone: str = "UTC",
        hours: tuple[dtime, dtime] | None = None,
        weekdays: Iterable[int] = range(7),
    ) -> None:
        """An event type whose bookings belong to `host_email`; `hours` is its daily window."""
        with self.state.lock:
            self.state.event_types[id] = EventType(
                id, length_minutes, host_email, time_zone, hours, frozenset(weekdays)
            )

    def control(self, **spec: Any) -> None:
        """Set switches, e.g. `control(status_override=429, times=2, match="POST /v2/bookings")`."""
        self.state.control(spec)

    def reset(self) -> None:
        self.state.reset()

    def book(
        self,
        event_type_id: int,
        start: datetime,
        *,
        name: str = "Walk In",
        email: str = "walkin@example.com",
        metadata: dict[str, str] | None = None,
        length_minutes: int | None = None,
    ) -> dict[str, Any]:
        """A booking made in Cal.com itself (not through our API): no call is counted.
        `length_minutes` as our sync sends `lengthInMinutes` (default: the event type's)."""
        spec: dict[str, Any] = {
            "eventTypeId": event_type_id,
            "start": _iso(start),
            "attendee": {"name": name, "email": email, "timeZone": "UTC"},
            "metadata": metadata or {},
        }
        if length_minutes is not None:
            spec["lengthInMinutes"] = length_minutes
        with self.state.lock:
            response = self.asgi._create({}, spec, {})
        data = json.loads(bytes(response.body))
        if response.status_code != 201:
            raise ValueError(data["error"]["message"])
        return data["data"]  # type: ignore[no-any-return]

    def cancel(self, uid: str, reason: str | None = None) -> dict[str, Any]:
        """Cancel in Cal.com itself (a webhook may or may not tell us)."""
        with self.state.lock:
            response = self.asgi._cancel({"uid": uid}, {"cancellationReason": reason}, {})
        data = json.loads(bytes(response.body))
        if response.status_code != 200:
            raise ValueError(data["error"]["message"])
        return data["data"]  # type: ignore[no-any-return]

    @property
    def bookings(self) -> dict[str, dict[str, Any]]:
        with self.state.lock:
            return copy.deepcopy(self.state.bookings)

    @property
    def calls(self) -> Counter[str]:
        with self.state.lock:
            return Counter(self.state.calls)

    @property
    def performed(self) -> Counter[str]:
        with self.state.lock:
            return Counter(self.state.performed)

    @property
    def slot_queries(self) -> list[dict[str, str]]:
        with self.state.lock:
            return copy.deepcopy(self.state.slot_queries)

    @property
    def refused(self) -> int:
        return self.state.refused

    @property
    def violations(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return copy.deepcopy(self.state.violations)


class FakeCalcomProcess:
    """The fake as a subprocess (for tests whose code under test runs in other processes)."""

    def __init__(
        self,
        *,
        event_types: Iterable[tuple[int, int, str]] = (),
        api_keys: Iterable[str] = (),
        port: int | None = None,
    ) -> None:
        self.event_types = list(event_types)
        self.api_keys = list(api_keys)
        self.port = port or _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = httpx.AsyncClient(base_url=self.url, timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeCalcomProcess:
        args = [sys.executable, "-m", "tests.support.fake_calcom", "--port", str(self.port)]
        for event_type_id, length, host in self.event_types:
            args += ["--event-type", f"{event_type_id}:{length}:{host}"]
        for key in self.api_keys:
            args += ["--api-key", key]
        self.proc = subprocess.Popen(args, cwd=ROOT, start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fake Cal.com exited with {self.proc.returncode}")
            try:
                if (await self.client.get("/_fake/state")).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("fake Cal.com subprocess not ready")
            await asyncio.sleep(0.05)

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                await asyncio.to_thread(self.proc.wait, 10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    async def control(self, **spec: Any) -> None:
        (await self.client.post("/_fake/control", json=spec)).raise_for_status()

    async def state(self) -> dict[str, Any]:
        response = await self.client.get("/_fake/state")
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    async def reset(self) -> None:
        (await self.client.post("/_fake/reset")).raise_for_status()

    async def add_event_type(
        self, id: int, length_minutes: int, host_email: str, **extra: Any
    ) -> None:
        spec = {"id": id, "length_minutes": length_minutes, "host_email": host_email, **extra}
        (await self.client.post("/_fake/event_types", json=spec)).raise_for_status()


def _free_port() -> int:
    with _bind() as sock:
        port: int = sock.getsockname()[1]
        return port


def main(argv: list[str] | None = None) -> None:
    """`python -m tests.support.fake_calcom --port N [--event-type ID:MIN:HOST]... [--api-key K]`"""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--event-type", action="append", default=[])
    parser.add_argument("--api-key", action="append", default=[])
    args = parser.parse_args(argv)
    state = FakeState(api_keys=set(args.api_key))
    for spec in args.event_type:
        event_type_id, length, host = spec.split(":", 2)
        state.event_types[int(event_type_id)] = EventType(int(event_type_id), int(length), host)
    server = uvicorn.Server(_config(FakeCalcomApp(state).app))
    server.run(sockets=[_bind(args.port)])


if __name__ == "__main__":
    main()
