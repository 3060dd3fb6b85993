"""The free-change deadline over HTTP (ADR 0016), on SQLite and MariaDB: configs stored
canonical (tiers sorted, the shorthand expanded, duplicates refused), evaluations and REST
cancellations charging only after the deadline, and the schema in the OpenAPI document."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.policy.schemas import OPERATOR_EXAMPLE, SHORTHAND_EXAMPLE
from shared.db.engine import Database
from shared.models import Appointment, AppointmentModification
from tests.conftest import Services
from tests.notifications.conftest import notify_rows
from tests.policy.test_policy_api import BERLIN, book, changes, evaluate, next_start, put, url
from tests.support.factories import Salon, create_salon

OPERATOR_CANONICAL = {
    "hours_before": "48",
    "allow_late": True,
    "fee_tiers": [
        {"min_hours_before": "0", "fee": "20.00"},
        {"min_hours_before": "24", "fee": "10.00"},
    ],
}
SCRAMBLED = {  # the operator's policy, keys and tiers in another order
    "fee_tiers": [{"min_hours_before": 24, "fee": 10}, {"min_hours_before": 0, "fee": 20}],
    "allow_late": True,
    "hours_before": 48,
}


@pytest.fixture
def policy(services: Services) -> httpx.AsyncClient:
    return services.clients["policy"]


async def effective(policy: httpx.AsyncClient, salon: Salon) -> dict[str, Any]:
    response = await policy.get(
        "/v1/policies/effective", params={"policy_type": "cancellation"}, headers=salon.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_tiers_in_any_order_are_stored_sorted(
    policy: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    company = salon.tenant.company_id
    created = await put(policy, salon, "company", company, SCRAMBLED)
    assert created.status_code == 201, created.text
    assert created.json()["config"] == OPERATOR_CANONICAL
    fetched = (await policy.get(url("company", company), headers=salon.headers)).json()
    assert fetched["config"] == OPERATOR_CANONICAL
    assert list(fetched["config"]) == ["hours_before", "allow_late", "fee_tiers"]
    merged = await effective(policy, salon)
    assert merged["config"]["fee_tiers"] == OPERATOR_CANONICAL["fee_tiers"]
    assert merged["sources"]["hours_before"] == "company"
    assert [row.after for row in await changes(db, company)] == [OPERATOR_CANONICAL]


async def test_the_seeds_shorthand_is_stored_canonical(
    policy: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    company = salon.tenant.company_id
    canonical = {
        "hours_before": "24",
        "allow_late": True,
        "fee_tiers": [{"min_hours_before": "0", "fee": "10.00"}],
    }
    created = await put(policy, salon, "company", company, SHORTHAND_EXAMPLE)
    assert created.status_code == 201, created.text
    assert created.json()["config"] == canonical
    merged = await effective(policy, salon)
    assert {key: merged["config"][key] for key in canonical} == canonical
    percent = await put(
        policy, salon, "branch", salon.branch_id, {"hours_before": 6, "fee_percent": 50}
    )
    assert percent.status_code == 201, percent.text
    assert percent.json()["config"]["fee_tiers"] == [
        {"min_hours_before": "0", "fee_percent": "50.00"}
    ]


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (
            {
                "fee_tiers": [
                    {"min_hours_before": 24, "fee": 10},
                    {"min_hours_before": 24.0, "fee": 5},
                ]
            },
            "fee_tiers[1].min_hours_before",
        ),
        ({"fee_tiers": [{"min_hours_before": 0, "fee": -1}]}, "fee_tiers[0].fee"),
        (
            {"fee_tiers": [{"min_hours_before": 0, "fee_percent": 100.5}]},
            "fee_tiers[0].fee_percent",
        ),
        ({"fee_tiers": [{"min_hours_before": 0, "fee": 1, "fee_percent": 1}]}, "fee_tiers[0]"),
        ({"fee": 10}, "fee"),
        ({"hours_before": 24, "fee": 10, "allow_late": False}, "allow_late"),
        ({"hours_before": 24, "free_from": 48}, "free_from"),
    ],
)
async def test_bad_tiers_are_422_and_change_nothing(
    policy: httpx.AsyncClient, db: Database, config: dict[str, Any], field: str
) -> None:
    salon = await create_salon(db)
    company = salon.tenant.company_id
    assert (await put(policy, salon, "company", company, SCRAMBLED)).status_code == 201
    response = await put(policy, salon, "company", company, config)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert (response.json()["code"], response.json()["field"]) == ("validation_error", field)
    stored = await policy.get(url("company", company), headers=salon.headers)
    assert stored.json()["config"] == OPERATOR_CANONICAL
    assert len(await changes(db, company)) == 1


async def test_staff_level_still_takes_preferences_only(
    policy: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    staff = salon.staff_ids[0]
    refused = await put(policy, salon, "staff", staff, SHORTHAND_EXAMPLE)
    assert (refused.status_code, refused.json()["field"]) == (422, "hours_before")
    assert (await policy.get(url("staff", staff), headers=salon.headers)).status_code == 404
    ok = await put(policy, salon, "staff", staff, {"notify_staff": True})
    assert (ok.status_code, ok.json()["config"]) == (201, {"notify_staff": True})


async def test_evaluate_charges_only_after_the_deadline(
    policy: httpx.AsyncClient, booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    start = next_start()
    appointment = (await book(booking, salon, start))["id"]
    await put(policy, salon, "company", salon.tenant.company_id, SCRAMBLED)
    deadline = (start.astimezone(UTC) - timedelta(hours=48)).astimezone(BERLIN).isoformat()
    cases = [
        (timedelta(days=8), True, "ok", "0.00", "192.00"),
        (timedelta(hours=48), True, "ok", "0.00", "48.00"),
        (timedelta(hours=30), True, "late_fee", "10.00", "30.00"),
        (timedelta(hours=24), True, "late_fee", "10.00", "24.00"),
        (timedelta(hours=23, minutes=30), True, "late_fee", "20.00", "23.50"),
        (-timedelta(minutes=1), False, "appointment_in_past", "0.00", "-0.02"),
    ]
    for before, allowed, reason, fee, hours in cases:
        at = (start - before).isoformat()
        answer = await evaluate(policy, salon, appointment_id=appointment, action="cancel", at=at)
        assert (answer["allowed"], answer["reason"], answer["fee"]) == (allowed, reason, fee)
        assert (answer["hours_before_appointment"], answer["deadline"]) == (hours, deadline)
        what_if = await evaluate(
            policy, salon, service_id=salon.service_id, start=start.isoformat(), at=at,
            action="cancel",
        )  # fmt: skip
        assert (what_if["reason"], what_if["fee"]) == (reason, fee)


async def _modifications(db: Database, salon: Salon, appointment: str) -> list[Any]:
    async with db.transaction(salon.tenant.company_id, write=False) as session:
        rows = await session.scalars(
            select(AppointmentModification).where(
                AppointmentModification.appointment_id == appointment
            )
        )
        return [(row.fee, row.within_policy) for row in rows]


async def test_rest_cancel_days_ahead_costs_nothing(
    services: Services, policy: httpx.AsyncClient, booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    await put(policy, salon, "company", salon.tenant.company_id, OPERATOR_EXAMPLE)
    start = next_start()  # at least three days ahead: before the 48 h deadline
    appointment = (await book(booking, salon, start))["id"]
    response = await booking.post(
        f"/v1/appointments/{appointment}/cancel", json={}, headers=salon.headers
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "cancelled",
        "appointment_id": appointment,
        "fee": "0.00",
        "currency": "EUR",
    }
    assert await _modifications(db, salon, appointment) == [(Decimal("0.00"), True)]
    kinds = [row.payload["event_type"] for row in await notify_rows(db, appointment)]
    assert kinds == ["booking_confirmed", "booking_cancelled"]  # no fee notice


LATE_FOR_ALL = {
    "hours_before": 24 * 30,  # every appointment the salon can book is past it
    "allow_late": True,
    "fee_tiers": [{"min_hours_before": 48, "fee": 10}, {"min_hours_before": 0, "fee": 20}],
}


async def _status(db: Database, salon: Salon, appointment: str) -> tuple[str, str, int]:
    async with db.transaction(salon.tenant.company_id, write=False) as session:
        row = await session.get(Appointment, appointment)
        assert row is not None
        return row.status, row.starts_at.isoformat(), row.version


async def test_rest_cancel_after_the_deadline_needs_the_fee_accepted(
    services: Services, policy: httpx.AsyncClient, booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    await put(policy, salon, "company", salon.tenant.company_id, LATE_FOR_ALL)
    start = next_start()  # 3 to 10 days ahead: the 48 h tier
    appointment = (await book(booking, salon, start))["id"]
    path = f"/v1/appointments/{appointment}/cancel"
    before = await _status(db, salon, appointment)
    for body in ({}, {"accept_fee": False}, None):
        refused = await booking.post(path, json=body, headers=salon.headers)
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert (problem["code"], problem["fee"], problem["currency"]) == (
            "fee_required",
            "10.00",
            "EUR",
        )
        assert problem["reason"] == "late_fee"
    assert await _status(db, salon, appointment) == before
    assert await _modifications(db, salon, appointment) == []
    assert (
        await booking.post(path, json={"accept_fee": "yes"}, headers=salon.headers)
    ).status_code == 422

    response = await booking.post(path, json={"accept_fee": True}, headers=salon.headers)
    assert response.status_code == 200, response.text
    assert response.json()["fee"] == "10.00"
    assert await _modifications(db, salon, appointment) == [(Decimal("10.00"), False)]
    rows = await notify_rows(db, appointment)
    assert [row.payload["event_type"] for row in rows] == [
        "booking_confirmed",
        "booking_cancelled",
        "cancellation_fee_charged",
    ]
    notice = rows[-1].payload
    assert (notice["fee"], notice["currency"]) == ("10.00", "EUR")
    missed = start.astimezone(UTC) - timedelta(hours=24 * 30)
    assert datetime.fromisoformat(notice["deadline"]) == missed


async def test_rest_reschedule_after_the_deadline_needs_the_fee_accepted(
    services: Services, policy: httpx.AsyncClient, booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    config = {**LATE_FOR_ALL, "fee_tiers": [{"min_hours_before": 0, "fee_percent": 50}]}
    await put(policy, salon, "company", salon.tenant.company_id, config, policy_type="reschedule")
    start = next_start()
    appointment = (await book(booking, salon, start))["id"]
    path = f"/v1/appointments/{appointment}/reschedule"
    target = (start + timedelta(hours=2)).isoformat()
    before = await _status(db, salon, appointment)
    refused = await booking.post(path, json={"start": target}, headers=salon.headers)
    assert refused.status_code == 409, refused.text
    assert (refused.json()["code"], refused.json()["fee"]) == ("fee_required", "14.00")
    assert await _status(db, salon, appointment) == before
    moved = await booking.post(
        path, json={"start": target, "accept_fee": True}, headers=salon.headers
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["fee"] == "14.00"
    status, starts_at, _version = await _status(db, salon, appointment)
    assert status == "confirmed"
    assert datetime.fromisoformat(starts_at).replace(tzinfo=UTC) == start + timedelta(hours=2)


async def test_openapi_documents_the_config_with_examples(policy: httpx.AsyncClient) -> None:
    document = (await policy.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    config = schemas["PolicyConfigIn"]
    assert config["additionalProperties"] is False
    assert config["examples"] == [OPERATOR_EXAMPLE, SHORTHAND_EXAMPLE]
    assert set(config["properties"]) == {
        "hours_before", "allow_late", "fee_tiers", "fee", "fee_percent", "max_per_window",
        "window_days", "max_per_appointment", "notify_staff", "staff_note",
    }  # fmt: skip
    assert "Free-change deadline" in config["properties"]["hours_before"]["description"]
    assert config["properties"]["fee_tiers"]["items"] == {"$ref": "#/components/schemas/FeeTierIn"}
    tier = schemas["FeeTierIn"]
    assert (tier["required"], tier["additionalProperties"]) == (["min_hours_before"], False)
    put_operation = document["paths"]["/v1/policies/{level}/{entity_id}/{policy_type}"]["put"]
    body = put_operation["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"] == "#/components/schemas/PolicyConfigIn"
    assert body["examples"]["tiers"]["value"] == OPERATOR_EXAMPLE
    assert body["examples"]["shorthand"]["value"] == SHORTHAND_EXAMPLE
