"""Policy configs over HTTP: per-level configs with audit, and the effective merge."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.models import ApiKey, PolicyConfigurationChange
from tests.conftest import Services
from tests.support.factories import Salon, create_salon, create_tenant, next_weekday

BERLIN = ZoneInfo("Europe/Berlin")
TIERS = [
    {"min_hours_before": 0, "fee_percent": 50},
    {"min_hours_before": 12, "fee": 5},
    {"min_hours_before": 48, "fee": "0"},
]


@pytest.fixture
def policy(services: Services) -> httpx.AsyncClient:
    return services.clients["policy"]


def url(level: str, entity_id: str, policy_type: str = "cancellation") -> str:
    return f"/v1/policies/{level}/{entity_id}/{policy_type}"


async def put(
    client: httpx.AsyncClient, salon: Salon, level: str, entity_id: str, config: Any, **kw: Any
) -> httpx.Response:
    return await client.put(url(level, entity_id, **kw), json=config, headers=salon.headers)


async def changes(db: Database, company_id: str) -> list[PolicyConfigurationChange]:
    async with db.transaction(company_id, write=False) as session:
        rows = await session.scalars(
            select(PolicyConfigurationChange).order_by(PolicyConfigurationChange.changed_at)
        )
        return list(rows)


async def key_id(db: Database, company_id: str) -> str:
    async with db.transaction(SYSTEM, write=False) as session:
        found = await session.scalar(select(ApiKey.id).where(ApiKey.company_id == company_id))
        assert found is not None
        return found


async def book(booking: httpx.AsyncClient, salon: Salon, start: datetime) -> dict[str, Any]:
    response = await booking.post(
        "/v1/appointments",
        json={
            "service_id": salon.service_id,
            "staff_id": salon.staff_ids[0],
            "start": start.isoformat(),
            "customer": {"name": "Max Mustermann", "phone": "+491701234567"},
        },
        headers=salon.headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def next_start(weekday: int = 1, hour: int = 10) -> datetime:
    day = next_weekday(weekday, at_least_days=4)
    return datetime(day.year, day.month, day.day, hour, tzinfo=BERLIN)


async def evaluate(client: httpx.AsyncClient, salon: Salon, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/policies/evaluate", json=body, headers=salon.headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_put_get_delete_round_trip(policy: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    company = salon.tenant.company_id
    config = {"hours_before": 24.0, "allow_late": True, "fee_tiers": TIERS, "max_per_window": 3}
    created = await put(policy, salon, "company", company, config)
    assert created.status_code == 201, created.text
    normalized = {
        "hours_before": "24",
        "allow_late": True,
        "fee_tiers": [
            {"min_hours_before": "0", "fee_percent": "50.00"},
            {"min_hours_before": "12", "fee": "5.00"},
            {"min_hours_before": "48", "fee": "0.00"},
        ],
        "max_per_window": 3,
    }
    stored = created.json()
    assert stored["config"] == normalized
    assert (stored["level"], stored["entity_id"], stored["policy_type"]) == (
        "company",
        company,
        "cancellation",
    )
    assert stored["updated_by"] == await key_id(db, company)
    fetched = await policy.get(url("company", company), headers=salon.headers)
    assert fetched.status_code == 200
    assert fetched.json()["config"] == normalized
    assert list(fetched.json()["config"]) == list(normalized)  # canonical key order

    replaced = await put(policy, salon, "company", company, {"hours_before": "12"})
    assert replaced.status_code == 200
    assert replaced.json()["config"] == {"hours_before": "12"}

    deleted = await policy.delete(url("company", company), headers=salon.headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await policy.get(url("company", company), headers=salon.headers)).status_code == 404
    again = await policy.delete(url("company", company), headers=salon.headers)
    assert again.status_code == 404
    assert again.headers["content-type"] == "application/problem+json"


async def test_every_change_is_audited(policy: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    branch = salon.branch_id
    await put(policy, salon, "branch", branch, {"hours_before": 48}, policy_type="reschedule")
    await put(
        policy,
        salon,
        "branch",
        branch,
        {"hours_before": 2, "max_per_appointment": 1},
        policy_type="reschedule",
    )
    await policy.delete(url("branch", branch, "reschedule"), headers=salon.headers)
    rows = await changes(db, salon.tenant.company_id)
    who = await key_id(db, salon.tenant.company_id)
    assert [(row.before, row.after) for row in rows] == [
        (None, {"hours_before": "48"}),
        ({"hours_before": "48"}, {"hours_before": "2", "max_per_appointment": 1}),
        ({"hours_before": "2", "max_per_appointment": 1}, None),
    ]
    assert {(row.level, row.entity_id, row.policy_type, row.changed_by) for row in rows} == {
        ("branch", branch, "reschedule", who)
    }
    assert all(row.changed_at <= datetime.now(UTC) for row in rows)


@pytest.mark.parametrize(
    ("level", "config", "field"),
    [
        ("company", {"hours_before": 24, "colour": "red"}, "colour"),
        ("company", {"hours_before": -1}, "hours_before"),
        (
            "branch",
            {"fee_tiers": [{"min_hours_before": 24, "fee": 5}, {"min_hours_before": 24, "fee": 9}]},
            "fee_tiers[1].min_hours_before",
        ),
        ("service", {"fee_tiers": [{"min_hours_before": 0, "fee_percent": 100.5}]}, None),
        ("company", {"fee_tiers": [{"min_hours_before": 0, "fee": "10.005"}]}, None),
        ("staff", {"notify_staff": True, "hours_before": 2}, "hours_before"),
        ("company", {"max_per_appointment": 1}, "max_per_appointment"),  # reschedule only
        ("company", {"window_days": 0}, "window_days"),
        ("company", ["hours_before"], "body"),
    ],
)
async def test_invalid_configs_are_422_naming_the_key_and_change_nothing(
    policy: httpx.AsyncClient,
    db: Database,
    level: str,
    config: Any,
    field: str | None,
) -> None:
    salon = await create_salon(db)
    entity = {
        "company": salon.tenant.company_id,
        "branch": salon.branch_id,
        "service": salon.service_id,
        "staff": salon.staff_ids[0],
    }[level]
    original = {"notify_staff": False} if level == "staff" else {"hours_before": "6"}
    assert (await put(policy, salon, level, entity, original)).status_code == 201
    response = await put(policy, salon, level, entity, config)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["code"] == "validation_error"
    expected = field or (
        "fee_tiers[0].fee_percent" if "percent" in str(config) else "fee_tiers[0].fee"
    )
    assert problem["field"] == expected
    stored = await policy.get(url(level, entity), headers=salon.headers)
    assert stored.json()["config"] == original
    assert len(await changes(db, salon.tenant.company_id)) == 1


async def test_unknown_level_type_and_entity(policy: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    other = await create_salon(db)
    company = salon.tenant.company_id
    bad_level = await put(policy, salon, "region", company, {})
    assert (bad_level.status_code, bad_level.json()["field"]) == (422, "level")
    bad_type = await put(policy, salon, "company", company, {}, policy_type="no_show")
    assert (bad_type.status_code, bad_type.json()["field"]) == (422, "policy_type")
    assert (await put(policy, salon, "company", "x" * 37, {})).status_code == 422
    for level, entity in [
        ("company", other.tenant.company_id),
        ("branch", other.branch_id),
        ("service", other.service_id),
        ("staff", other.staff_ids[0]),
        ("staff", salon.branch_id),  # an id of the wrong kind
    ]:
        response = await put(policy, salon, level, entity, {})
        assert response.status_code == 404, (level, response.text)
        assert response.json()["code"] == "not_found"
    assert await changes(db, company) == []


async def test_scopes(policy: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    company = salon.tenant.company_id
    assert (await policy.put(url("company", company), json={})).status_code == 401
    operator = await create_tenant(db, scopes=["operator"])
    response = await policy.put(
        url("company", operator.company_id), json={}, headers=operator.headers
    )
    assert response.status_code == 403
    effective = await policy.get(
        "/v1/policies/effective", params={"policy_type": "cancellation"}, headers=operator.headers
    )
    assert effective.status_code == 200
    agent = await create_tenant(db, scopes=["agent"])
    refused = await policy.post(
        "/v1/policies/evaluate",
        json={"appointment_id": "x", "action": "cancel"},
        headers=agent.headers,
    )
    assert refused.status_code == 403


async def test_effective_merge_with_provenance(policy: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    company, branch, service = salon.tenant.company_id, salon.branch_id, salon.service_id
    staff = salon.staff_ids[0]
    await put(policy, salon, "company", company, {"hours_before": 48, "max_per_window": 3})
    await put(policy, salon, "branch", branch, {"hours_before": 24, "allow_late": True})
    await put(policy, salon, "service", service, {"fee_tiers": [{"min_hours_before": 0, "fee": 7}]})
    await put(policy, salon, "staff", staff, {"notify_staff": True, "staff_note": "ring twice"})

    async def effective(**params: str) -> dict[str, Any]:
        response = await policy.get(
            "/v1/policies/effective",
            params={"policy_type": "cancellation", **params},
            headers=salon.headers,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    full = await effective(staff_id=staff, service_id=service)
    assert full["config"] == {
        "hours_before": "24",
        "allow_late": True,
        "fee_tiers": [{"min_hours_before": "0", "fee": "7.00"}],
        "max_per_window": 3,
        "window_days": 30,
        "notify_staff": True,
        "staff_note": "ring twice",
    }
    assert full["sources"] == {
        "hours_before": "branch",
        "allow_late": "branch",
        "fee_tiers": "service",
        "max_per_window": "company",
        "window_days": "default",
        "notify_staff": "staff",
        "staff_note": "staff",
    }
    assert full["chain"] == {
        "company_id": company,
        "branch_id": branch,
        "service_id": service,
        "staff_id": staff,
    }
    by_staff = await effective(staff_id=staff)  # staff -> its branch, no service
    assert by_staff["sources"]["fee_tiers"] == "default"
    assert by_staff["sources"]["hours_before"] == "branch"
    by_service = await effective(service_id=service)  # no branch: company + service
    assert by_service["sources"]["hours_before"] == "company"
    assert by_service["sources"]["fee_tiers"] == "service"
    by_branch = await effective(branch_id=branch)
    assert by_branch["config"]["hours_before"] == "24"
    assert "notify_staff" not in by_branch["config"]
    company_only = await effective()
    assert company_only["config"]["hours_before"] == "48"
    reschedule = await effective(staff_id=staff, policy_type="reschedule")
    assert set(reschedule["sources"].values()) == {"default"}

    # Removing the branch level lets the company's value through again (cache invalidated).
    await policy.delete(url("branch", branch), headers=salon.headers)
    after = await effective(staff_id=staff, service_id=service)
    assert (after["config"]["hours_before"], after["sources"]["hours_before"]) == ("48", "company")

    other = await create_salon(db)
    for params in ({"staff_id": other.staff_ids[0]}, {"branch_id": other.branch_id}):
        response = await policy.get(
            "/v1/policies/effective",
            params={"policy_type": "cancellation", **params},
            headers=salon.headers,
        )
        assert response.status_code == 404
        assert response.json()["field"] == next(iter(params))
    bad = await policy.get(
        "/v1/policies/effective", params={"policy_type": "x"}, headers=salon.headers
    )
    assert (bad.status_code, bad.json()["field"]) == (422, "policy_type")


async def test_concurrent_first_puts_of_one_scope(policy: httpx.AsyncClient, db: Database) -> None:
    import asyncio

    salon = await create_salon(db)
    company = salon.tenant.company_id
    for round_ in range(5):
        entity = (salon.branch_id, salon.service_id, *salon.staff_ids)[round_ % 4]
        level = ("branch", "service", "staff", "staff")[round_ % 4]
        policy_type = ("cancellation", "reschedule")[round_ // 4]
        configs = [{"notify_staff": True}, {"notify_staff": False}]
        responses = await asyncio.gather(
            *(put(policy, salon, level, entity, c, policy_type=policy_type) for c in configs)
        )
        assert sorted(r.status_code for r in responses) == [200, 201], [r.text for r in responses]
    rows = await changes(db, company)
    assert len(rows) == 10
    by_scope: dict[tuple[str, str, str], list[PolicyConfigurationChange]] = {}
    for row in rows:
        by_scope.setdefault((row.level, row.entity_id, row.policy_type), []).append(row)
    for pair in by_scope.values():
        befores = sorted(pair, key=lambda row: row.before is not None)
        assert befores[0].before is None
        assert befores[1].before == befores[0].after  # the loser saw the winner's config
