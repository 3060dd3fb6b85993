"""The fake Cal.com itself: it holds our requests to the OpenAPI document, answers in the
documented shapes, behaves like Cal.com (a taken slot is a 400, a reschedule makes a new uid)
and each failure switch does what it says."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import Any

import httpx
import pytest

from tests.support.fake_calcom import SLOT_TAKEN, Contract, FakeCalcom, FakeCalcomProcess

BOOKINGS = {"cal-api-version": "2024-08-13", "Authorization": "Bearer cal_test_key"}
SLOTS = {"cal-api-version": "2024-09-04"}
START = (datetime.now(UTC) + timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)


def _iso(instant: datetime) -> str:
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _create_body(start: datetime = START, event_type_id: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "start": _iso(start),
        "eventTypeId": event_type_id,
        "attendee": {"name": "Ann Example", "email": "ann@example.com", "timeZone": "UTC"},
        "metadata": {"appointment_id": "appt-1"},
        **extra,
    }


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeCalcom]:
    async with FakeCalcom() as running:
        yield running


@pytest.fixture
async def http(fake: FakeCalcom) -> AsyncIterator[httpx.AsyncClient]:
    fake.reset()
    fake.state.event_types.clear()
    fake.state.api_keys.clear()
    fake.add_event_type(1, 30, "host@example.com")
    fake.add_event_type(2, 60, "host@example.com")
    fake.add_event_type(3, 30, "other@example.com")
    async with httpx.AsyncClient(base_url=fake.url, timeout=5) as client:
        yield client


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract()


# -- the contract check ------------------------------------------------------------------


async def test_request_without_api_version_is_refused_and_recorded(
    fake: FakeCalcom, http: httpx.AsyncClient
) -> None:
    response = await http.post(
        "/v2/bookings", json=_create_body(), headers={"Authorization": "Bearer k"}
    )

    assert response.status_code == 400
    assert "cal-api-version" in response.json()["error"]["message"]
    assert fake.bookings == {}
    [violation] = fake.violations
    assert violation["op"] == "POST /v2/bookings"
    assert violation["problems"] == ["header cal-api-version must be '2024-08-13', got None"]


async def test_slots_with_the_bookings_api_version_is_a_violation(
    fake: FakeCalcom, http: httpx.AsyncClient
) -> None:
    params = {"eventTypeId": "1", "start": "2030-01-07", "end": "2030-01-07"}
    response = await http.get("/v2/slots", params=params, headers=BOOKINGS)

    assert response.status_code == 400
    assert fake.violations[0]["problems"] == [
        "header cal-api-version must be '2024-09-04', got '2024-08-13'"
    ]


async def test_body_is_validated_against_the_operation_schema(
    fake: FakeCalcom, http: httpx.AsyncClient
) -> None:
    bad = {"start": _iso(START), "eventTypeId": "1", "attendees": [{"name": "A"}]}
    response = await http.post("/v2/bookings", json=bad, headers=BOOKINGS)

    assert response.status_code == 400
    problems = fake.violations[0]["problems"]
    assert 'body: "attendee" is a required property' in problems
    assert 'body: "1" is not of type "number"' in problems
    assert any("'attendees' was unexpected" in p for p in problems)
    assert fake.bookings == {}


async def test_nested_schema_and_query_parameters_are_checked(
    fake: FakeCalcom, http: httpx.AsyncClient
) -> None:
    no_time_zone = _create_body()
    del no_time_zone["attendee"]["timeZone"]
    assert (await http.post("/v2/bookings", json=no_time_zone, headers=BOOKINGS)).status_code == 400
    listed = await http.get(
        "/v2/bookings", params={"eventTypeID": "1", "status": "done"}, headers=BOOKINGS
    )
    assert listed.status_code == 400
    no_auth = await http.get("/v2/bookings", headers={"cal-api-version": "2024-08-13"})
    assert no_auth.status_code == 400

    problems = [v["problems"] for v in fake.violations]
    assert problems[0] == ['body: "timeZone" is a required property']
    assert "unknown query parameter eventTypeID" in problems[1]
    assert any("status='done'" in p for p in problems[1])
    assert "missing Authorization: Bearer <api key>" in problems[2]


async def test_a_conforming_request_leaves_no_violation(
    fake: FakeCalcom, http: httpx.AsyncClient
) -> None:
    response = await http.post(
        "/v2/bookings", json=_create_body(lengthInMinutes=30), headers=BOOKINGS
    )

    assert response.status_code == 201
    assert fake.violations == []


async def test_unknown_api_key_is_401_when_keys_are_configured(
    fake: FakeCalcom, http: httpx.AsyncClient
) -> None:
    fake.state.api_keys.add("cal_live_right")

    wrong = await http.get("/v2/bookings", headers=BOOKINGS)
    right = await http.get(
        "/v2/bookings", headers={**BOOKINGS, "Authorization": "Bearer cal_live_right"}
    )

    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"] == "ApiAuthGuard - Invalid API Key"
    assert right.status_code == 200


# -- documented shapes and Cal.com behaviour ---------------------------------------------


async def test_answers_have_the_documented_shapes(
    fake: FakeCalcom, http: httpx.AsyncClient, contract: Contract
) -> None:
    created = (await http.post("/v2/bookings", json=_create_body(), headers=BOOKINGS)).json()
    uid = created["data"]["uid"]
    fetched = (await http.get(f"/v2/bookings/{uid}", headers=BOOKINGS)).json()
    listed = (await http.get("/v2/bookings", headers=BOOKINGS)).json()
    moved = await http.post(
        f"/v2/bookings/{uid}/reschedule",
        json={"start": _iso(START + timedelta(hours=1))},
        headers=BOOKINGS,
    )
    cancelled = await http.post(
        f"/v2/bookings/{moved.json()['data']['uid']}/cancel",
        json={"cancellationReason": "ill"},
        headers=BOOKINGS,
    )

    assert moved.status_code == 201 and cancelled.status_code == 200
    for schema, body in (
        ("CreateBookingOutput_2024_08_13", created),
        ("GetBookingOutput_2024_08_13", fetched),
        ("GetBookingsOutput_2024_08_13", listed),
        ("RescheduleBookingOutput_2024_08_13", moved.json()),
        ("CancelBookingOutput_2024_08_13", cancelled.json()),
    ):
        assert body["status"] == "success"
        assert contract.response_problems(schema, body) == []
    for booking in (created["data"], fetched["data"], *listed["data"]):
        assert contract.response_problems("BookingOutput_2024_08_13", booking) == []
    assert contract.response_problems("PaginationMetaDto", listed["pagination"]) == []
    assert created["data"]["hosts"][0]["email"] == "host@example.com"
    assert created["data"]["metadata"] == {"appointment_id": "appt-1"}
    assert created["data"]["end"] == _iso(START + timedelta(minutes=30))
    assert fake.violations == []


async def test_overlapping_booking_of_the_same_host_is_a_400(
    fake: FakeCalcom, http: httpx.AsyncClient
) -> None:
    first = await http.post("/v2/bookings", json=_create_body(), headers=BOOKINGS)
    # Event type 2 (60 min) has the same host and overlaps; event type 3 is another host.
    clash = await http.post(
        "/v2/bookings",
        json=_create_body(START - timedelta(minutes=45), event_type_id=2),
        headers=BOOKINGS,
    )
    other_host = await http.post(
        "/v2/bookings", json=_create_body(event_type_id=3), headers=BOOKINGS
    )
    back_to_back = await http.post(
        "/v2/bookings", json=_create_body(START + timedelta(minutes=30)), headers=BOOKINGS
    )

    assert first.status_code == 201
    assert clash.status_code == 400
    assert clash.json()["status"] == "error"
    assert clash.json()["error"]["message"] == SLOT_TAKEN
    assert other_host.status_code == 201
    assert back_to_back.status_code == 201
    uid = first.json()["data"]["uid"]
    await http.post(f"/v2/bookings/{uid}/cancel", json={}, headers=BOOKINGS)
    again = await http.post(
        "/v2/bookings",
        json=_create_body(START - timedelta(minutes=30), event_type_id=2),
        headers=BOOKINGS,
    )
    assert again.status_code == 201  # the cancelled booking freed the time
    assert fake.performed["POST /v2/bookings"] == 4


async def test_reschedule_makes_a_new_booking_and_cancels_the_old(
    fake: FakeCalcom, http: httpx.AsyncClient
) -> None:
    old = (await http.post("/v2/bookings", json=_create_body(), headers=BOOKINGS)).json()["data"]
    new_start = START + timedelta(days=1)

    response = await http.post(
        f"/v2/bookings/{old['uid']}/reschedule",
        json={"start": _iso(new_start), "reschedulingReason": "later"},
        headers=BOOKINGS,
    )

    new = response.json()["data"]
    assert new["uid"] != old["uid"]
    assert new["rescheduledFromUid"] == old["uid"]
    assert new["start"] == _iso(new_start)
    assert new["metadata"] == {"appointment_id": "appt-1"}
    stored_old = fake.bookings[old["uid"]]
    assert stored_old["status"] == "cancelled"
    assert stored_old["rescheduledToUid"] == new["uid"]
    again = await http.post(f"/v2/bookings/{old['uid']}/cancel", json={}, headers=BOOKINGS)
    assert again.status_code == 400
    missing = await http.post("/v2/bookings/nope/cancel", json={}, headers=BOOKINGS)
    assert missing.status_code == 404


async def test_list_filters_and_paginates(fake: FakeCalcom, http: httpx.AsyncClient) -> None:
    uids = []
    for hour in range(5):
        body = _create_body(START + timedelta(hours=hour))
        uids.append(
            (await http.post("/v2/bookings", json=body, headers=BOOKINGS)).json()["data"]["uid"]
        )
    await http.post("/v2/bookings", json=_create_body(event_type_id=3), headers=BOOKINGS)
    time.sleep(0.005)
    mark = datetime.now(UTC)
    time.sleep(0.005)
    await http.post(f"/v2/bookings/{uids[1]}/cancel", json={}, headers=BOOKINGS)

    first = (
        await http.get("/v2/bookings", params={"eventTypeId": "1", "take": "2"}, headers=BOOKINGS)
    ).json()
    last = (
        await http.get(
            "/v2/bookings", params={"eventTypeId": "1", "take": "2", "skip": "4"}, headers=BOOKINGS
        )
    ).json()
    changed = (
        await http.get("/v2/bookings", params={"afterUpdatedAt": _iso(mark)}, headers=BOOKINGS)
    ).json()
    window = (
        await http.get(
            "/v2/bookings",
            params={
                "eventTypeId": "1",
                "afterStart": _iso(START + timedelta(hours=1)),
                "beforeEnd": _iso(START + timedelta(hours=3, minutes=30)),
            },
            headers=BOOKINGS,
        )
    ).json()
    cancelled = (
        await http.get("/v2/bookings", params={"status": "cancelled"}, headers=BOOKINGS)
    ).json()

    assert [b["uid"] for b in first["data"]] == uids[:2]
    assert first["pagination"]["totalItems"] == 5
    assert first["pagination"]["hasNextPage"] is True
    assert first["pagination"]["remainingItems"] == 3
    assert [b["uid"] for b in last["data"]] == uids[4:]
    assert last["pagination"]["hasNextPage"] is False
    assert last["pagination"]["currentPage"] == 3
    assert [b["uid"] for b in changed["data"]] == [uids[1]]
    assert [b["uid"] for b in window["data"]] == uids[1:4]
    assert [b["uid"] for b in cancelled["data"]] == [uids[1]]
    assert fake.violations == []


async def test_slots_follow_the_working_window_minus_bookings(
    fake: FakeCalcom, http: httpx.AsyncClient
) -> None:
    fake.add_event_type(
        7, 60, "hours@example.com", time_zone="Europe/Berlin", hours=(dtime(9), dtime(12))
    )
    day = START.date() + timedelta(days=7)
    booked = datetime.combine(day, dtime(9), UTC)  # 10:00 Berlin in winter or 11:00 in summer
    await http.post("/v2/bookings", json=_create_body(booked, event_type_id=7), headers=BOOKINGS)
    params = {"eventTypeId": "7", "start": day.isoformat(), "end": day.isoformat()}

    berlin = await http.get(
        "/v2/slots", params={**params, "timeZone": "Europe/Berlin"}, headers=SLOTS
    )
    ranged = await http.get("/v2/slots", params={**params, "format": "range"}, headers=SLOTS)

    assert berlin.status_code == 200
    data = berlin.json()["data"]
    assert list(data) == [day.isoformat()]
    starts = [datetime.fromisoformat(slot["start"]) for slot in data[day.isoformat()]]
    local_hours = [s.hour for s in starts]
    booked_local = booked.astimezone(starts[0].tzinfo).hour
    assert local_hours == [h for h in (9, 10, 11) if h != booked_local]
    assert all(
        s.utcoffset()
        == datetime.combine(day, dtime(12), UTC).astimezone(starts[0].tzinfo).utcoffset()
        for s in starts
    )
    range_slots = ranged.json()["data"][day.isoformat()]
    assert all(set(slot) == {"start", "end"} for slot in range_slots)
    assert len(range_slots) == 2
    assert fake.violations == []


async def test_slots_for_a_reschedule_do_not_count_the_booking_being_moved(
    fake: FakeCalcom, http: httpx.AsyncClient
) -> None:
    fake.add_event_type(8, 60, "moving@example.com", hours=(dtime(9), dtime(12)))
    day = START.date() + timedelta(days=8)
    created = await http.post(
        "/v2/bookings",
        json=_create_body(datetime.combine(day, dtime(10), UTC), event_type_id=8),
        headers=BOOKINGS,
    )
    uid = created.json()["data"]["uid"]
    params = {"eventTypeId": "8", "start": day.isoformat(), "end": day.isoformat()}

    def hours(response: httpx.Response) -> list[int]:
        assert response.status_code == 200, response.text
        slots = response.json()["data"][day.isoformat()]
        return [datetime.fromisoformat(slot["start"]).hour for slot in slots]

    plain = await http.get("/v2/slots", params=params, headers=SLOTS)
    moving = await http.get(
        "/v2/slots", params={**params, "bookingUidToReschedule": uid}, headers=SLOTS
    )
    unknown = await http.get(
        "/v2/slots", params={**params, "bookingUidToReschedule": "nosuchuid"}, headers=SLOTS
    )
    assert (hours(plain), hours(moving), hours(unknown)) == ([9, 11], [9, 10, 11], [9, 11])
    assert [q.get("bookingUidToReschedule") for q in fake.slot_queries] == [
        None,
        uid,
        "nosuchuid",
    ]
    assert fake.violations == []

    empty = await http.get(
        "/v2/slots", params={**params, "bookingUidToReschedule": ""}, headers=SLOTS
    )
    twice = await http.get(
        "/v2/slots",
        params=[*params.items(), ("bookingUidToReschedule", uid), ("bookingUidToReschedule", uid)],
        headers=SLOTS,
    )
    assert (empty.status_code, twice.status_code) == (400, 400)
    assert [v["problems"] for v in fake.violations] == [
        ["query bookingUidToReschedule='' is not a booking uid"],
        ["query bookingUidToReschedule given 2 times"],
    ]
    assert len(fake.slot_queries) == 3  # refused requests are not answered


# -- switches ----------------------------------------------------------------------------


async def test_down_resets_the_connection_without_performing(
    fake: FakeCalcom, http: httpx.AsyncClient
) -> None:
    fake.control(down=True, times=1)

    with pytest.raises(httpx.TransportError):
        await http.post("/v2/bookings", json=_create_body(), headers=BOOKINGS)
    after = await http.post("/v2/bookings", json=_create_body(), headers=BOOKINGS)

    assert after.status_code == 201
    assert fake.refused == 1
    assert fake.calls["POST /v2/bookings"] == 1
    assert len(fake.bookings) == 1


async def test_slow_delays_the_answer(fake: FakeCalcom, http: httpx.AsyncClient) -> None:
    fake.control(slow_s=0.4, times=1)

    started = time.perf_counter()
    slow = await http.get("/v2/bookings", headers=BOOKINGS)
    slow_s = time.perf_counter() - started
    started = time.perf_counter()
    fast = await http.get("/v2/bookings", headers=BOOKINGS)
    fast_s = time.perf_counter() - started

    assert slow.status_code == fast.status_code == 200
    assert slow_s >= 0.4
    assert fast_s < 0.3


async def test_status_override_429_carries_rate_limit_headers_only(
    fake: FakeCalcom, http: httpx.AsyncClient
) -> None:
    fake.control(status_override=429, times=2, match="POST /v2/bookings", rate_limit_reset_s=5)

    listed = await http.get("/v2/bookings", headers=BOOKINGS)  # not matched: answered
    limited = [
        await http.post("/v2/bookings", json=_create_body(), headers=BOOKINGS) for _ in range(3)
    ]

    assert listed.status_code == 200
    assert [r.status_code for r in limited] == [429, 429, 201]
    headers = limited[0].headers
    assert headers["X-RateLimit-Limit-Default"] == "120"
    assert headers["X-RateLimit-Remaining-Default"] == "0"
    assert headers["X-RateLimit-Reset-Default"] == "5"
    assert "retry-after" not in headers
    assert limited[0].json()["error"]["message"] == "ThrottlerException: Too Many Requests"
    assert fake.performed["POST /v2/bookings"] == 1


async def test_status_override_5xx(fake: FakeCalcom, http: httpx.AsyncClient) -> None:
    fake.control(status_override=500, times=1)
    first = await http.get("/v2/bookings", headers=BOOKINGS)
    fake.control(status_override=502, times=1)
    second = await http.get("/v2/bookings", headers=BOOKINGS)
    third = await http.get("/v2/bookings", headers=BOOKINGS)

    assert first.status_code == 500
    assert first.json()["error"]["code"] == "INTERNAL_SERVER_ERROR"
    assert second.status_code == 502
    assert second.headers["content-type"].startswith("text/html")
    assert third.status_code == 200


async def test_commit_then_reset_performs_the_write_but_gives_no_answer(
    fake: FakeCalcom, http: httpx.AsyncClient
) -> None:
    fake.control(commit_then_reset=True, times=1)

    listed = await http.get("/v2/bookings", headers=BOOKINGS)  # reads are not affected
    with pytest.raises(httpx.TransportError):
        await http.post("/v2/bookings", json=_create_body(), headers=BOOKINGS)

    assert listed.status_code == 200
    [booking] = fake.bookings.values()
    assert booking["metadata"] == {"appointment_id": "appt-1"}
    assert fake.performed["POST /v2/bookings"] == 1


async def test_delay_after_commit_writes_before_answering(
    fake: FakeCalcom, http: httpx.AsyncClient
) -> None:
    fake.control(delay_after_commit_s=0.6, times=1)

    with pytest.raises(httpx.ReadTimeout):
        await http.post("/v2/bookings", json=_create_body(), headers=BOOKINGS, timeout=0.2)

    assert len(fake.bookings) == 1


async def test_control_and_state_over_http(fake: FakeCalcom, http: httpx.AsyncClient) -> None:
    set_down = await http.post("/_fake/control", json={"down": True, "times": 1})
    assert set_down.json()["switches"]["down"] == {"value": True, "times": 1, "match": None}
    with pytest.raises(httpx.TransportError):
        await http.get("/v2/bookings", headers=BOOKINGS)
    await http.post("/v2/bookings", json=_create_body(), headers=BOOKINGS)

    state = (await http.get("/_fake/state")).json()

    assert state["refused"] == 1
    assert state["calls"] == {"POST /v2/bookings": 1}
    assert state["switches"] == {}
    [booking] = state["bookings"].values()
    assert booking["start"] == _iso(START)
    direct = await http.post("/_fake/bookings", json=_create_body(START + timedelta(hours=5)))
    uid = direct.json()["data"]["uid"]
    cancelled = await http.post(f"/_fake/bookings/{uid}/cancel", json={"cancellationReason": "x"})
    assert direct.status_code == 201 and cancelled.json()["data"]["status"] == "cancelled"
    assert fake.calls == {"POST /v2/bookings": 1}  # changes made in Cal.com itself: not calls
    assert (await http.post("/_fake/reset")).status_code == 200
    assert fake.bookings == {}


async def test_subprocess_fake_is_driven_over_http() -> None:
    async with (
        FakeCalcomProcess(event_types=[(5, 45, "proc@example.com")]) as proc,
        httpx.AsyncClient(base_url=proc.url, timeout=5) as http,
    ):
        created = await http.post(
            "/v2/bookings", json=_create_body(event_type_id=5), headers=BOOKINGS
        )
        await proc.control(commit_then_reset=True, times=1)
        with pytest.raises(httpx.TransportError):
            await http.post(
                "/v2/bookings",
                json=_create_body(START + timedelta(hours=2), event_type_id=5),
                headers=BOOKINGS,
            )
        state = await proc.state()

    assert created.status_code == 201
    assert created.json()["data"]["end"] == _iso(START + timedelta(minutes=45))
    assert state["performed"] == {"POST /v2/bookings": 2}
    assert len(state["bookings"]) == 2
    assert state["violations"] == []
