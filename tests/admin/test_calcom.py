"""The Cal.com integration of a company: stored on the company row, shown masked."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.models import Company
from tests.admin.support import ADMIN, assert_problem
from tests.support.factories import Tenant

URL = f"{ADMIN}/integrations/calcom"


async def stored(db: Database, company_id: str) -> tuple[str | None, str | None, str | None]:
    async with db.transaction(SYSTEM, write=False) as session:
        company = (
            await session.execute(select(Company).where(Company.id == company_id))
        ).scalar_one()
    return company.calcom_api_key, company.calcom_base_url, company.calcom_webhook_secret


async def test_put_get_delete(booking: httpx.AsyncClient, db: Database, tenant: Tenant) -> None:
    empty = await booking.get(URL, headers=tenant.headers)
    assert empty.status_code == 200
    webhook_path = f"/v1/webhooks/calcom/{tenant.company_id}"
    assert empty.json() == {
        "configured": False,
        "api_key": None,
        "base_url": None,
        "webhook_secret": None,
        "webhook_path": webhook_path,
    }

    put = await booking.put(
        URL, headers=tenant.headers, json={"api_key": "cal_live_0123456789abcd"}
    )
    assert put.status_code == 200, put.text
    secret = put.json()["webhook_secret"]
    assert len(secret) >= 32  # generated, and shown this once
    assert put.json() == {
        "configured": True,
        "api_key": "****abcd",
        "base_url": "https://api.cal.com",
        "webhook_secret": secret,
        "webhook_path": webhook_path,
    }
    assert await stored(db, tenant.company_id) == (
        "cal_live_0123456789abcd",
        "https://api.cal.com",
        secret,
    )
    got = await booking.get(URL, headers=tenant.headers)
    assert got.json() == {**put.json(), "webhook_secret": "****" + secret[-4:]}
    assert "0123456789" not in got.text

    replaced = await booking.put(
        URL,
        headers=tenant.headers,
        json={"api_key": "cal_live_new_key_wxyz", "base_url": "https://cal.example.com/"},
    )
    assert replaced.json()["webhook_secret"] == "****" + secret[-4:]  # kept, not regenerated
    assert await stored(db, tenant.company_id) == (
        "cal_live_new_key_wxyz",
        "https://cal.example.com",
        secret,
    )
    own_secret = await booking.put(
        URL,
        headers=tenant.headers,
        json={"api_key": "cal_live_new_key_wxyz", "webhook_secret": "whsec_0123456789abcdef"},
    )
    assert own_secret.json()["webhook_secret"] == "****cdef"

    deleted = await booking.delete(URL, headers=tenant.headers)
    assert deleted.status_code == 204
    assert (await booking.get(URL, headers=tenant.headers)).json() == empty.json()
    assert await stored(db, tenant.company_id) == (None, None, None)
    assert (await booking.delete(URL, headers=tenant.headers)).status_code == 204


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "api_key"),
        ({"api_key": "short"}, "api_key"),
        ({"api_key": None}, "api_key"),
        ({"api_key": "cal_live_0123456789", "base_url": "ftp://cal.example.com"}, "base_url"),
        ({"api_key": "cal_live_0123456789", "base_url": "not a url"}, "base_url"),
        ({"api_key": "cal_live_0123456789", "webhook_secret": "short"}, "webhook_secret"),
        ({"api_key": "cal_live_0123456789", "extra": 1}, "extra"),
    ],
)
async def test_invalid_put_is_422_and_changes_nothing(
    booking: httpx.AsyncClient, db: Database, tenant: Tenant, body: dict[str, object], field: str
) -> None:
    response = await booking.put(URL, headers=tenant.headers, json=body)
    assert_problem(response, 422, "validation_error", field)
    assert await stored(db, tenant.company_id) == (None, None, None)
