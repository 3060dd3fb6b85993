"""A POST marked READ_ONLY (policy evaluation, template preview, the ops login) reads in a
read transaction: on SQLite it must answer while another request holds the write lock, as
booking does when it asks the policy service in the middle of a cancellation. Were it to
open a write transaction (BEGIN IMMEDIATE), it would wait for that lock, and booking would
wait for it: a deadlock until SQLite's busy timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa

from services.policy.app import create
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.models import Company
from tests.support.factories import create_salon


@pytest.fixture
async def policy_routes(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The policy app without its lean handlers: every request takes the FastAPI route."""
    app = create(settings.model_copy(update={"lean_routes": False}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://policy.test") as c:
            yield c


async def test_a_read_only_post_answers_while_the_write_lock_is_held(
    policy_routes: httpx.AsyncClient, db: Database, backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("MariaDB has no database-wide write lock")
    salon = await create_salon(db)
    evaluate = policy_routes.post(
        "/v1/policies/evaluate",
        json={"appointment_id": "no-such-appointment", "action": "cancel"},
        headers=salon.headers,
    )
    write = policy_routes.put(
        f"/v1/policies/company/{salon.tenant.company_id}/cancellation",
        json={"hours_before": 12},
        headers=salon.headers,
    )
    async with db.transaction(SYSTEM) as session:  # BEGIN IMMEDIATE: the write lock
        await session.execute(sa.select(Company.id).limit(1))
        answered = await asyncio.wait_for(evaluate, timeout=5)
        assert answered.status_code == 404, answered.text
        # The control: a write does wait for the lock (so the lock really was held).
        waiting = asyncio.ensure_future(write)
        await asyncio.sleep(0.5)
        assert not waiting.done()
    written = await asyncio.wait_for(waiting, timeout=10)
    assert written.status_code == 201, written.text
