"""Policy evaluation over HTTP: booked appointments' exact fees, the what-if form, the quota
from modification rows, tenant isolation and malformed bodies."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

import httpx
import pytest

from shared.db.engine import Database
from shared.models import Appointment, AppointmentModification
from tests.conftest import Services
from tests.policy.test_policy_api import (
    BERLIN,
    TIERS,
    book,
    evaluate,
    next_start,
    put,
    url,
)
from tests.support.factories import create_salon, create_tenant


@pytest.fixture
def policy(services: Services) -> httpx.AsyncClient:
    return services.clients["policy"]


async def test_evaluate_booked_appointment_exact_fees(
    policy: httpx.AsyncClient, booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    start = next_start()
    appointment = await book(booking, salon, start)
    config = {"hours_before": 24, "allow_late": True, "fee_tiers": TIERS}
    await put(policy, salon, "company", salon.tenant.company_id, config)
    deadline = (start.astimezone(UTC) - timedelta(hours=24)).astimezone(BERLIN).isoformat()

    early = await evaluate(
        policy,
        salon,
        appointment_id=appointment["id"],
        action="cancel",
        at=(start - timedelta(hours=30)).isoformat(),
    )
    assert early == {  # before the 24 h deadline: free, whatever the tiers (ADR 0016)
        "allowed": True,
        "reason": "ok",
        "fee": "0.00",
        "currency": "EUR",
        "deadline": deadline,
        "hours_before_appointment": "30.00",
        "quota": {"used": 0, "limit": None, "window_days": 30},
        "action": "cancel",
        "policy_type": "cancellation",
        "appointment_id": appointment["id"],
    }
    late = await evaluate(
        policy,
        salon,
        appointment_id=appointment["id"],
        action="cancel",
        at=(start - timedelta(hours=5, minutes=30)).isoformat(),
    )
    assert (late["allowed"], late["reason"], late["fee"]) == (True, "late_fee", "14.00")
    assert late["hours_before_appointment"] == "5.50"
    free = await evaluate(
        policy,
        salon,
        appointment_id=appointment["id"],
        action="cancel",
        at=(start - timedelta(hours=48)).isoformat(),
    )
    assert (free["reason"], free["fee"]) == ("ok", "0.00")

    # A staff-level override cannot change business rules; a branch one can.
    await put(policy, salon, "branch", salon.branch_id, {"allow_late": False})
    refused = await evaluate(
        policy,
        salon,
        appointment_id=appointment["id"],
        action="cancel",
        at=(start - timedelta(hours=5)).isoformat(),
    )
    assert (refused["allowed"], refused["reason"], refused["fee"]) == (
        False,
        "deadline_passed",
        "0.00",
    )
    past = await evaluate(
        policy,
        salon,
        appointment_id=appointment["id"],
        action="reschedule",
        at=(start + timedelta(minutes=1)).isoformat(),
    )
    assert (past["allowed"], past["reason"], past["policy_type"]) == (
        False,
        "appointment_in_past",
        "reschedule",
    )
    now = await evaluate(policy, salon, appointment_id=appointment["id"], action="cancel")
    assert now["allowed"] is True  # `at` defaults to now, days before the start


async def test_what_if_form(policy: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    await put(
        policy,
        salon,
        "company",
        salon.tenant.company_id,
        {"hours_before": 24, "allow_late": True, "fee_tiers": TIERS},
    )
    past = await evaluate(
        policy,
        salon,
        service_id=salon.service_id,
        start="2020-01-01T10:00:00+01:00",
        action="cancel",
    )
    assert (past["allowed"], past["reason"], past["fee"]) == (False, "appointment_in_past", "0.00")
    assert past["deadline"] == "2019-12-31T10:00:00+01:00"
    assert past["appointment_id"] is None
    start = next_start()
    hypothetical = await evaluate(
        policy,
        salon,
        service_id=salon.service_id,
        staff_id=salon.staff_ids[1],
        start=start.isoformat(),
        at=(start - timedelta(hours=3)).isoformat(),
        action="cancel",
        customer_phone="0170 1234567",
    )
    assert (hypothetical["reason"], hypothetical["fee"]) == ("late_fee", "14.00")
    assert hypothetical["quota"]["used"] == 0  # unknown caller
    assert hypothetical["deadline"] == (start - timedelta(hours=24)).astimezone(BERLIN).isoformat()


async def test_quota_from_modification_rows(
    policy: httpx.AsyncClient, booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    company = salon.tenant.company_id
    start = next_start()
    appointment = await book(booking, salon, start)
    await put(policy, salon, "company", company, {"max_per_window": 2, "window_days": 30})
    await put(
        policy,
        salon,
        "company",
        company,
        {"max_per_window": 5, "max_per_appointment": 1},
        policy_type="reschedule",
    )
    at = start - timedelta(days=3)

    async def record(kind: str, age: timedelta) -> None:
        async with db.transaction(company) as session:
            session.add(
                AppointmentModification(
                    appointment_id=appointment["id"],
                    customer_id=appointment["customer_id"],
                    modification_type=kind,
                    actor="api",
                    created_at=at.astimezone(UTC) - age,
                )
            )

    await record("cancel", timedelta(days=10))
    await record("cancel", timedelta(days=30))  # exactly 30 x 24 h old: no longer counts
    await record("reschedule", timedelta(days=1))  # another type
    first = await evaluate(
        policy, salon, appointment_id=appointment["id"], action="cancel", at=at.isoformat()
    )
    assert (first["allowed"], first["reason"]) == (True, "ok")
    assert first["quota"] == {"used": 1, "limit": 2, "window_days": 30}

    await record("cancel", timedelta(days=30) - timedelta(seconds=1))
    full = await evaluate(
        policy, salon, appointment_id=appointment["id"], action="cancel", at=at.isoformat()
    )
    assert (full["allowed"], full["reason"], full["fee"]) == (False, "quota_exceeded", "0.00")
    assert full["quota"] == {"used": 2, "limit": 2, "window_days": 30}
    what_if = await evaluate(
        policy,
        salon,
        service_id=salon.service_id,
        start=start.isoformat(),
        at=at.isoformat(),
        action="cancel",
        customer_phone="+49 170 1234567",
    )
    assert (what_if["reason"], what_if["quota"]["used"]) == ("quota_exceeded", 2)

    moved = await evaluate(
        policy, salon, appointment_id=appointment["id"], action="reschedule", at=at.isoformat()
    )
    assert (moved["allowed"], moved["reason"]) == (False, "max_reschedules_reached")
    assert moved["quota"] == {"used": 1, "limit": 5, "window_days": 30}


async def test_tenant_isolation(
    policy: httpx.AsyncClient, booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    intruder = await create_tenant(db)
    appointment = await book(booking, salon, next_start())
    await put(policy, salon, "company", salon.tenant.company_id, {"hours_before": 2})
    evaluated = await policy.post(
        "/v1/policies/evaluate",
        json={"appointment_id": appointment["id"], "action": "cancel"},
        headers=intruder.headers,
    )
    assert evaluated.status_code == 404
    assert evaluated.json()["code"] == "not_found"
    what_if = await policy.post(
        "/v1/policies/evaluate",
        json={
            "service_id": salon.service_id,
            "start": next_start().isoformat(),
            "action": "cancel",
        },
        headers=intruder.headers,
    )
    assert what_if.status_code == 404
    stored = await policy.get(url("company", salon.tenant.company_id), headers=intruder.headers)
    assert stored.status_code == 404
    deleted = await policy.delete(url("company", salon.tenant.company_id), headers=intruder.headers)
    assert deleted.status_code == 404
    mine = await policy.get(url("company", salon.tenant.company_id), headers=salon.headers)
    assert mine.json()["config"] == {"hours_before": "2"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "cancel"}, "service_id"),
        ({"appointment_id": "a", "action": "delete"}, "action"),
        ({"appointment_id": "a"}, "action"),
        ({"appointment_id": "a", "action": "cancel", "at": "2026-01-01T10:00:00"}, "at"),
        ({"appointment_id": "a", "action": "cancel", "at": "tomorrow"}, "at"),
        ({"appointment_id": "a", "action": "cancel", "at": 12}, "at"),
        ({"appointment_id": "a", "action": "cancel", "at": "1700000000"}, "at"),
        ({"appointment_id": "a", "action": "cancel", "at": "0001-01-01T00:00:00+01:00"}, "at"),
        ({"appointment_id": "a", "action": "cancel", "start": "2026-01-01T10:00:00Z"}, "start"),
        ({"appointment_id": "x" * 37, "action": "cancel"}, "appointment_id"),
        ({"appointment_id": "a", "action": "cancel", "extra": 1}, "extra"),
        ({"service_id": "s", "action": "cancel"}, "start"),
        ({"service_id": "s", "start": "2026-01-01T10:00", "action": "cancel"}, "start"),
        ({"service_id": "s", "start": "2026-01-01T10:00Z", "action": "x"}, "action"),
        (
            {
                "service_id": "s",
                "start": "2026-01-01T10:00Z",
                "action": "cancel",
                "customer_phone": "not a phone",
            },
            "customer_phone",
        ),
    ],
)
async def test_malformed_evaluate_is_422_naming_the_field(
    policy: httpx.AsyncClient, db: Database, body: dict[str, Any], field: str
) -> None:
    salon = await create_salon(db)
    response = await policy.post("/v1/policies/evaluate", json=body, headers=salon.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == field


async def test_malformed_bodies_never_500(policy: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    company = salon.tenant.company_id
    for content in (b"{", b"null", b"[]", b'"x"', b"[" * 10_000 + b"]" * 10_000):
        for method, path in (("PUT", url("company", company)), ("POST", "/v1/policies/evaluate")):
            response = await policy.request(
                method,
                path,
                content=content,
                headers={**salon.headers, "content-type": "application/json"},
            )
            assert 400 <= response.status_code < 500, (method, content[:10], response.text)
    unknown = await policy.post(
        "/v1/policies/evaluate",
        json={"appointment_id": "missing", "action": "cancel"},
        headers=salon.headers,
    )
    assert (unknown.status_code, unknown.json()["field"]) == (404, "appointment_id")


async def test_not_modifiable_status(
    policy: httpx.AsyncClient, booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    appointment = await book(booking, salon, next_start())
    async with db.transaction(salon.tenant.company_id) as session:
        row = await session.get(Appointment, appointment["id"])
        assert row is not None
        row.status = "cancelled"
    result = await evaluate(policy, salon, appointment_id=appointment["id"], action="cancel")
    assert (result["allowed"], result["reason"]) == (False, "not_modifiable")
