"""The warm read paths: statements per evaluation, the auth caches, the parsed-policy memo,
and the effective read whose cache lookup overlaps the chain's SELECT."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, update

from services.policy import service
from services.policy.evaluation import Policy
from shared.db.engine import Database
from shared.db.scoped import tenant_value
from shared.db.tenancy import SYSTEM
from shared.errors import TenantNotSet
from shared.hierarchy.cache import Entry, Memo
from shared.hierarchy.chain import Chain, predicted_chain
from shared.models import Branch, Company, Staff
from shared.security.api_keys import company_cache
from tests.conftest import Services
from tests.policy.test_policy_api import book, next_start, put
from tests.support.factories import create_platform_key, create_salon


@pytest.fixture
def policy(services: Services) -> httpx.AsyncClient:
    return services.clients["policy"]


@pytest.fixture
def policy_app(services: Services) -> FastAPI:
    return services.apps["policy"]


@contextmanager
def statements(app: FastAPI) -> Iterator[list[str]]:
    """The SQL statements the app sends meanwhile (SELECTs only: no BEGIN/COMMIT noise)."""
    engine = app.state.db.engine.sync_engine
    seen: list[str] = []

    def on_statement(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(" ".join(statement.split()))

    # The lean routes' autocommit reads (MariaDB) bypass the engine: count them too.
    reads = app.state.db.raw
    if reads is not None:
        fetch = reads._fetch

        async def counted(statement: Any, params: Any, tenant: str) -> Any:
            on_statement(None, None, reads.compiled(statement).sql)
            return await fetch(statement, params, tenant)

        reads._fetch = counted
    event.listen(engine, "before_cursor_execute", on_statement)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        if reads is not None:
            del reads._fetch


async def test_a_warm_evaluation_costs_two_statements(
    policy: httpx.AsyncClient,
    policy_app: FastAPI,
    booking: httpx.AsyncClient,
    db: Database,
    service_key: str,
    backend: str,
) -> None:
    """As booking asks (platform key + X-Company-ID): the appointment with its branch's zone
    (and, for a reschedule, its move count) in one SELECT, the quota's range scan in another.
    No company lookup: the company is cached like the key."""
    salon = await create_salon(db)
    company = salon.tenant.company_id
    appointment = await book(booking, salon, next_start())
    await put(policy, salon, "company", company, {"max_per_window": 3})
    headers = {"Authorization": f"Bearer {service_key}", "X-Company-ID": company}
    for action in ("cancel", "reschedule"):
        body = {"appointment_id": appointment["id"], "action": action}
        warm = await policy.post("/v1/policies/evaluate", json=body, headers=headers)
        assert warm.status_code == 200, warm.text
        with statements(policy_app) as seen:
            response = await policy.post("/v1/policies/evaluate", json=body, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json() == warm.json()
        assert not [sql for sql in seen if "FROM companies" in sql], seen
        subject = [sql for sql in seen if "FROM appointments" in sql]
        quota = [sql for sql in seen if sql.startswith("SELECT appointment_modifications")]
        assert len(subject) == 1 and len(quota) == 1, seen
        # SQLite never caches what a read transaction loaded (see snapshot_is_current).
        config = [sql for sql in seen if "FROM policy_configurations" in sql]
        assert len(config) == (0 if backend == "mysql" else 1), seen
        assert len(seen) == 2 + len(config), seen


async def test_a_platform_keys_company_is_cached_for_the_auth_ttl(
    policy: httpx.AsyncClient, policy_app: FastAPI, db: Database
) -> None:
    """Only an active company is cached: an unknown one is looked up (and refused) each time;
    a deactivated one is refused once its entry expires (AUTH_CACHE_TTL_S, docs/adr/0004)."""
    salon = await create_salon(db)
    company = salon.tenant.company_id
    platform = await create_platform_key(db, scopes=["operator"])
    headers = {"Authorization": f"Bearer {platform}", "X-Company-ID": company}
    params = {"policy_type": "cancellation"}
    assert policy_app.state.settings.auth_cache_ttl_s > 0

    with statements(policy_app) as seen:
        first = await policy.get("/v1/policies/effective", params=params, headers=headers)
        second = await policy.get("/v1/policies/effective", params=params, headers=headers)
    assert (first.status_code, second.status_code) == (200, 200), first.text
    assert len([sql for sql in seen if "FROM companies" in sql]) == 1, seen

    unknown = {**headers, "X-Company-ID": "no-such-company"}
    for _ in range(2):
        with statements(policy_app) as seen:
            refused = await policy.get("/v1/policies/effective", params=params, headers=unknown)
        assert refused.status_code == 404
        assert [sql for sql in seen if "FROM companies" in sql], seen

    async with db.transaction(SYSTEM) as session:
        await session.execute(update(Company).where(Company.id == company).values(active=False))
    cached = await policy.get("/v1/policies/effective", params=params, headers=headers)
    assert cached.status_code == 200  # within the TTL, as documented
    company_cache.clear()  # the TTL has passed
    refused = await policy.get("/v1/policies/effective", params=params, headers=headers)
    assert refused.status_code == 404


def test_the_memo_keeps_a_value_per_company_version_and_key() -> None:
    memo = Memo(max_entries=2)
    made: list[str] = []

    def make(value: str) -> Any:
        def build() -> str:
            made.append(value)
            return value

        return build

    assert memo.get_or_make("c", Entry("1", {}), "k", make("a")) == "a"
    assert memo.get_or_make("c", Entry("1", {}), "k", make("b")) == "a"  # memoized
    assert memo.get_or_make("c", Entry("2", {}), "k", make("c")) == "c"  # a write bumped it
    assert memo.get_or_make("d", Entry("2", {}), "k", make("d")) == "d"  # another company
    # Filed under no version (no Redis, or an old snapshot): never memoized.
    assert memo.get_or_make("c", Entry(None, {}), "k", make("e")) == "e"
    assert memo.get_or_make("c", Entry(None, {}), "k", make("f")) == "f"
    assert made == ["a", "c", "d", "e", "f"]
    assert memo.get_or_make("e", Entry("1", {}), "k", make("g")) == "g"  # full: starts over
    assert memo.get_or_make("c", Entry("1", {}), "k", make("h")) == "h"


async def test_without_a_cache_nothing_is_memoized(policy: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    company = salon.tenant.company_id
    await put(policy, salon, "company", company, {"hours_before": 10})
    async with db.transaction(company, write=False) as session:
        first = await service.effective_policy(session, None, Chain(company), "cancellation")
        again = await service.effective_policy(session, None, Chain(company), "cancellation")
    assert isinstance(first, Policy) and first == again
    assert first is not again
    assert str(first.hours_before) == "10"


async def test_policy_memo_follows_the_version(
    services: Services, policy: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    company = salon.tenant.company_id
    cache = services.apps["policy"].state.policy_cache
    await put(policy, salon, "company", company, {"hours_before": 10})
    chain = Chain(company, salon.branch_id)
    # A write transaction's snapshot is current on both backends, so its values are filed.
    async with db.transaction(company, write=True) as session:
        first = await service.effective_policy(session, cache, chain, "cancellation")
    async with db.transaction(company, write=True) as session:
        again = await service.effective_policy(session, cache, chain, "cancellation")
    assert first is again and str(first.hours_before) == "10"
    await put(policy, salon, "branch", salon.branch_id, {"hours_before": 5})
    async with db.transaction(company, write=True) as session:
        changed = await service.effective_policy(session, cache, chain, "cancellation")
    assert str(changed.hours_before) == "5"


def test_predicted_chain() -> None:
    assert predicted_chain("c") == Chain("c")
    assert predicted_chain("c", branch_id="b", staff_id="s") == Chain("c", "b", None, "s")
    assert predicted_chain("c", branch_id="b", service_id="v") == Chain("c", "b", "v")
    assert predicted_chain("c", staff_id="s") is None  # its branch decides
    assert predicted_chain("c", service_id="v") is None


async def test_effective_with_a_branch_still_checks_every_id(
    policy: httpx.AsyncClient, db: Database
) -> None:
    """The cache read overlaps the chain's SELECT, which still refuses bad ids."""
    salon = await create_salon(db)
    company = salon.tenant.company_id
    await put(policy, salon, "branch", salon.branch_id, {"hours_before": 6})
    async with db.transaction(company) as session:
        north = Branch(name="Nord", timezone="Europe/Berlin")
        session.add(north)
        await session.flush()
        elsewhere = Staff(branch_id=north.id, name="Zoe")
        session.add(elsewhere)
    other = await create_salon(db)

    async def effective(**params: str) -> httpx.Response:
        return await policy.get(
            "/v1/policies/effective",
            params={"policy_type": "cancellation", **params},
            headers=salon.headers,
        )

    for _ in range(2):  # cold, then warm
        ok = await effective(branch_id=salon.branch_id, staff_id=salon.staff_ids[0])
        assert ok.status_code == 200, ok.text
        assert ok.json()["sources"]["hours_before"] == "branch"
        assert ok.json()["chain"]["staff_id"] == salon.staff_ids[0]
        moved = await effective(branch_id=salon.branch_id, staff_id=elsewhere.id)
        assert (moved.status_code, moved.json()["field"]) == (422, "staff_id")
        foreign = await effective(branch_id=other.branch_id)
        assert (foreign.status_code, foreign.json()["field"]) == (404, "branch_id")
        missing = await effective(branch_id=salon.branch_id, service_id="no-such-service")
        assert (missing.status_code, missing.json()["field"]) == (404, "service_id")


async def test_tenant_value(db: Database) -> None:
    async with db.transaction(SYSTEM, write=False) as session:
        assert tenant_value(session, "c1") == "c1"  # the system scope reads the company named
    async with db.transaction("c2", write=False) as session:
        assert tenant_value(session, "c1") == "c2"  # the bound tenant wins: no row of c1
    async with db.transaction(None, write=False) as session:
        with pytest.raises(TenantNotSet):
            tenant_value(session, "c1")
