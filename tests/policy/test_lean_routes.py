"""The lean evaluate and effective routes answer exactly as the FastAPI routes do.

Every request below goes to the policy app with its lean handlers (services/policy/
lean_routes.py) and to one built with LEAN_ROUTES off, twice (cold and warm cache), and the
status, media type and body must be equal; on MariaDB the warm answers must come from the
raw reads (shared/db/raw_sql.py), not from a silent fall-back to a session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from services.policy.app import create
from services.policy.service import NAMESPACE
from shared.config import Settings
from shared.db.engine import Database
from shared.web.rate_limit import RateLimits
from tests.conftest import Services
from tests.policy.test_policy_api import TIERS, book, next_start, put
from tests.support.factories import Salon, create_platform_key, create_salon, create_tenant


@pytest.fixture
def policy(services: Services) -> httpx.AsyncClient:
    return services.clients["policy"]


@pytest.fixture
async def full_app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create(settings.model_copy(update={"lean_routes": False}))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def full(full_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=full_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://full.test") as client:
        yield client


Request = tuple[str, str, dict[str, Any]]


class RawCounter:
    """Counts the statements the lean app sends through the raw reads."""

    def __init__(self, app: FastAPI) -> None:
        self.reads = app.state.db.raw
        self.count = 0

    def __enter__(self) -> RawCounter:
        if self.reads is not None:
            fetch = self.reads._fetch

            async def counted(statement: Any, params: Any, tenant: str) -> Any:
                self.count += 1
                return await fetch(statement, params, tenant)

            self.reads._fetch = counted
        return self

    def __exit__(self, *exc: object) -> None:
        if self.reads is not None:
            del self.reads._fetch


def _answer(response: httpx.Response) -> tuple[int, str, Any]:
    media = response.headers.get("content-type", "")
    body = response.json() if "json" in media else response.text
    return response.status_code, media, body


async def same_answers(
    lean: httpx.AsyncClient, full: httpx.AsyncClient, requests: list[Request]
) -> list[tuple[int, str, Any]]:
    answers = []
    for method, path, kw in requests:
        expected = _answer(await full.request(method, path, **kw))
        for attempt in ("cold", "warm"):
            got = _answer(await lean.request(method, path, **kw))
            assert got == expected, (method, path, kw, attempt)
        answers.append(expected)
    return answers


async def _salon_with_policies(policy: httpx.AsyncClient, db: Database) -> Salon:
    salon = await create_salon(db)
    company = salon.tenant.company_id
    config = {"hours_before": 24, "allow_late": True, "fee_tiers": TIERS, "max_per_window": 2}
    assert (await put(policy, salon, "company", company, config)).status_code == 201
    moved = {"hours_before": 12, "max_per_appointment": 1}
    reschedule = await put(
        policy, salon, "branch", salon.branch_id, moved, policy_type="reschedule"
    )
    assert reschedule.status_code == 201
    return salon


async def test_evaluate_answers_as_the_full_route(
    policy: httpx.AsyncClient,
    full: httpx.AsyncClient,
    services: Services,
    booking: httpx.AsyncClient,
    db: Database,
    service_key: str,
    backend: str,
) -> None:
    salon = await _salon_with_policies(policy, db)
    other = await create_salon(db)
    start = next_start()
    appointment = (await book(booking, salon, start))["id"]
    foreign = (await book(booking, other, next_start(hour=11)))["id"]
    platform = {"Authorization": f"Bearer {service_key}", "X-Company-ID": salon.tenant.company_id}
    agent = await create_tenant(db, scopes=["agent"])
    path = "/v1/policies/evaluate"

    def post(body: Any, headers: dict[str, str] | None = None, **kw: Any) -> Request:
        return (
            "POST",
            path,
            {"json": body, "headers": salon.headers if headers is None else headers, **kw},
        )

    at = (start - timedelta(hours=30)).isoformat()
    late = (start - timedelta(hours=3)).isoformat()
    requests = [
        post({"appointment_id": appointment, "action": "cancel", "at": at}),
        post({"appointment_id": appointment, "action": "cancel", "at": late}),
        post({"appointment_id": appointment, "action": "reschedule", "at": at}),
        post({"appointment_id": appointment, "action": "reschedule", "at": late}),
        post({"appointment_id": appointment, "action": "cancel", "at": at}, platform),
        post({"appointment_id": appointment, "action": "cancel", "at": start.isoformat()}),
        # The what-if form (a session, never the raw reads).
        post({"service_id": salon.service_id, "start": start.isoformat(), "action": "cancel"}),
        post(
            {
                "service_id": salon.service_id,
                "staff_id": salon.staff_ids[1],
                "start": start.isoformat(),
                "customer_phone": "+491701234567",
                "action": "reschedule",
                "at": late,
            }
        ),
        # Refusals by the domain (lean handler) and by the models (deferred).
        post({"appointment_id": foreign, "action": "cancel", "at": at}),
        post({"appointment_id": "no-such-appointment", "action": "cancel"}),
        post({"appointment_id": appointment, "service_id": salon.service_id, "action": "cancel"}),
        post({"appointment_id": appointment, "action": "delete"}),
        post({"appointment_id": appointment, "action": "cancel", "at": "2026-01-01T10:00"}),
        post({"appointment_id": appointment, "action": "cancel", "extra": 1}),
        post(["not", "an", "object"]),
        ("POST", path, {"content": b"{not json", "headers": salon.headers}),
        ("POST", path, {"content": b"[" * 5000, "headers": salon.headers}),
        (
            "POST",
            path,
            {
                "content": f'{{"appointment_id": "{appointment}", "action": "cancel"}}'.encode(),
                "headers": {**salon.headers, "content-type": "text/plain"},
            },
        ),
        post({"appointment_id": appointment, "action": "cancel"}, {}),
        post({"appointment_id": appointment, "action": "cancel"}, {"Authorization": "Basic x"}),
        post({"appointment_id": appointment, "action": "cancel"}, {"Authorization": "Bearer no"}),
        post({"appointment_id": appointment, "action": "cancel"}, agent.headers),
        post(
            {"appointment_id": appointment, "action": "cancel"},
            {"Authorization": platform["Authorization"]},
        ),
        post(
            {"appointment_id": appointment, "action": "cancel"},
            {**platform, "X-Company-ID": "no-such-company"},
        ),
    ]
    with RawCounter(services.apps["policy"]) as raw:
        answers = await same_answers(policy, full, requests)
    statuses = [status for status, _, _ in answers]
    assert statuses[:8] == [200] * 8, answers
    assert statuses[8:] == [404, 404] + [422] * 8 + [401, 401, 401, 403, 401, 404]
    # 30 h ahead is before the 24 h deadline: free (ADR 0016); 3 h ahead: the 0 h tier, 50 %.
    assert answers[0][2]["fee"] == "0.00" and answers[1][2]["reason"] == "late_fee"
    assert answers[1][2]["fee"] == "14.00"
    if backend == "mysql":
        # The 6 warm evaluations by id (and the cold ones after the first fill), 2 reads each,
        # plus the subject read of the foreign appointment twice.
        assert raw.count >= 2 * 6 + 2, raw.count
    else:
        assert raw.count == 0


def _lookups() -> tuple[float, float, float]:
    """The policy cache's (hits, misses, errors) so far in this process."""
    return tuple(  # type: ignore[return-value]
        REGISTRY.get_sample_value("cache_requests_total", {"cache": NAMESPACE, "outcome": o}) or 0.0
        for o in ("hit", "miss", "error")
    )


async def _counted(send: Any) -> tuple[int, tuple[float, float, float]]:
    before = _lookups()
    response = await send()
    assert response.status_code == 200, response.text
    after = _lookups()
    return response.status_code, tuple(a - b for a, b in zip(after, before, strict=True))  # type: ignore[return-value]


async def test_a_cold_lookup_counts_one_miss_and_a_warm_one_one_hit(
    policy: httpx.AsyncClient, booking: httpx.AsyncClient, db: Database, backend: str
) -> None:
    """The lean handler reads the cache once and loads in a session on a miss: the miss is
    counted once, so the hit rate the bench and the alert read is the callers' real one."""
    salon = await _salon_with_policies(policy, db)
    start = next_start()
    appointment = (await book(booking, salon, start))["id"]
    body = {"appointment_id": appointment, "action": "cancel"}

    def evaluate() -> Any:
        return policy.post("/v1/policies/evaluate", json=body, headers=salon.headers)

    def effective() -> Any:
        params = {"policy_type": "reschedule", "branch_id": salon.branch_id}
        return policy.get("/v1/policies/effective", params=params, headers=salon.headers)

    # SQLite files no value read in a read transaction (its snapshot may predate the
    # version it read: shared.hierarchy.reads.snapshot_is_current), so there every read misses.
    warm = (1.0, 0.0, 0.0) if backend == "mysql" else (0.0, 1.0, 0.0)
    assert await _counted(evaluate) == (200, (0.0, 1.0, 0.0))
    assert await _counted(evaluate) == (200, warm)
    assert await _counted(effective) == (200, (0.0, 1.0, 0.0))
    assert await _counted(effective) == (200, warm)


async def test_effective_answers_as_the_full_route(
    policy: httpx.AsyncClient,
    full: httpx.AsyncClient,
    services: Services,
    db: Database,
    backend: str,
) -> None:
    salon = await _salon_with_policies(policy, db)
    other = await create_salon(db)
    path = "/v1/policies/effective"

    def get(params: Any, headers: dict[str, str] | None = None) -> Request:
        return (
            "GET",
            path,
            {"params": params, "headers": salon.headers if headers is None else headers},
        )

    operator = await create_platform_key(db, scopes=["operator"])
    platform = {"Authorization": f"Bearer {operator}", "X-Company-ID": salon.tenant.company_id}
    requests = [
        get({"policy_type": "cancellation"}),
        get({"policy_type": "reschedule", "branch_id": salon.branch_id}),
        get({"policy_type": "cancellation", "staff_id": salon.staff_ids[1]}),
        get({"policy_type": "cancellation", "service_id": salon.service_id}),
        get(
            {
                "policy_type": "reschedule",
                "branch_id": salon.branch_id,
                "service_id": salon.service_id,
                "staff_id": salon.staff_ids[0],
            }
        ),
        get({"policy_type": "cancellation", "branch_id": f"  {salon.branch_id} "}),
        get({"policy_type": "cancellation", "branch_id": salon.branch_id, "unknown": "x"}),
        get({"policy_type": "cancellation"}, platform),
        # Refused.
        get({"policy_type": "cancellation", "branch_id": other.branch_id}),
        get({"policy_type": "cancellation", "staff_id": "nobody"}),
        get(
            {
                "policy_type": "cancellation",
                "branch_id": other.branch_id,
                "staff_id": salon.staff_ids[0],
            }
        ),
        get({"policy_type": "refund"}),
        get({}),
        get({"policy_type": "cancellation", "branch_id": "x" * 37}),
        get([("policy_type", "cancellation"), ("policy_type", "refund")]),
        get({"policy_type": "cancellation"}, {}),
    ]
    with RawCounter(services.apps["policy"]) as raw:
        answers = await same_answers(policy, full, requests)
    statuses = [status for status, _, _ in answers]
    assert statuses == [200] * 8 + [404, 404, 404, 422, 422, 422, 422, 401], answers
    assert answers[1][2]["sources"]["hours_before"] == "branch"
    assert answers[2][2]["chain"]["branch_id"] == salon.branch_id
    assert (raw.count > 0) == (backend == "mysql")


async def test_a_rate_limited_key_gets_the_same_429(
    policy: httpx.AsyncClient,
    full: httpx.AsyncClient,
    full_app: FastAPI,
    services: Services,
    db: Database,
) -> None:
    """Each request counts once against the key's limit, lean or not."""
    lean_app = services.apps["policy"]
    salon = await create_salon(db)
    params = {"policy_type": "cancellation"}
    saved = lean_app.state.rate_limits
    lean_app.state.rate_limits = full_app.state.rate_limits = RateLimits(per_key_per_minute=3)
    try:
        answers = [
            await client.get("/v1/policies/effective", params=params, headers=salon.headers)
            for client in (policy, full, policy, full, policy)
        ]
    finally:
        lean_app.state.rate_limits = saved
    assert [response.status_code for response in answers] == [200, 200, 200, 429, 429]
    lean_refusal, full_refusal = answers[4], answers[3]
    assert lean_refusal.headers["content-type"] == "application/problem+json"
    assert lean_refusal.json() == full_refusal.json()
    assert lean_refusal.json()["code"] == "rate_limited"
    assert 1 <= int(lean_refusal.headers["retry-after"]) <= 60
