"""Fixtures of the admin API tests: two unrelated companies, each with a small set-up."""

from __future__ import annotations

import httpx
import pytest

from shared.db.engine import Database
from tests.admin.support import Org, build_org
from tests.support.factories import Tenant, create_platform_key, create_tenant


@pytest.fixture
async def tenant(db: Database) -> Tenant:
    return await create_tenant(db)


@pytest.fixture
async def platform_key(db: Database) -> str:
    """A platform admin key: only it attaches phone numbers and Retell agents."""
    return await create_platform_key(db)


@pytest.fixture
async def org(booking: httpx.AsyncClient, db: Database, platform_key: str) -> Org:
    """A company with one branch, service, staff member (qualified), hours, time off, number."""
    return await build_org(booking, await create_tenant(db), platform_key)


@pytest.fixture
async def other_org(booking: httpx.AsyncClient, db: Database, platform_key: str) -> Org:
    return await build_org(booking, await create_tenant(db), platform_key)
