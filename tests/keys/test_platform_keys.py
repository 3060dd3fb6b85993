"""Platform keys are listed and revoked over REST by a platform admin key only."""

from __future__ import annotations

import httpx

from shared.db.engine import Database
from shared.security.api_keys import parse_key
from tests.admin.support import ADMIN, assert_problem
from tests.support.factories import create_platform_key, create_tenant

URL = f"{ADMIN}/platform-keys"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_list_and_revoke_platform_keys(booking: httpx.AsyncClient, db: Database) -> None:
    operator = await create_platform_key(db, ["admin"])
    doomed = await create_platform_key(db, ["operator"])
    tenant = await create_tenant(db)

    listed = await booking.get(URL, headers=bearer(operator))
    assert listed.status_code == 200, listed.text
    by_prefix = {item["prefix"]: item for item in listed.json()["items"]}
    entry = by_prefix[parse_key(doomed)]
    assert entry["name"] == "platform"
    assert entry["scopes"] == ["operator"]
    assert entry["revoked_at"] is None
    assert parse_key(operator) in by_prefix
    assert "company_id" not in entry and "key_hash" not in entry
    assert doomed not in listed.text
    assert tenant.admin_key.split("_")[1] not in by_prefix, "company keys are not listed"

    # The doomed key works (with a tenant named) until it is revoked.
    named = {**bearer(doomed), "X-Company-ID": tenant.company_id}
    assert (await booking.get("/v1/ops/overview", headers=named)).status_code == 200

    revoked = await booking.delete(f"{URL}/{entry['id']}", headers=bearer(operator))
    assert revoked.status_code == 204
    assert (
        await booking.delete(f"{URL}/{entry['id']}", headers=bearer(operator))
    ).status_code == 204
    assert_problem(await booking.get("/v1/ops/overview", headers=named), 401, "unauthorized")
    after = await booking.get(URL, headers=bearer(operator))
    revoked_entry = {item["id"]: item for item in after.json()["items"]}[entry["id"]]
    assert revoked_entry["revoked_at"] is not None


async def test_only_a_platform_admin_key_may_manage_platform_keys(
    booking: httpx.AsyncClient, db: Database
) -> None:
    operator = await create_platform_key(db, ["admin"])
    platform_reader = await create_platform_key(db, ["operator"])
    tenant = await create_tenant(db)
    some_id = (await booking.get(URL, headers=bearer(operator))).json()["items"][0]["id"]

    assert_problem(await booking.get(URL), 401, "unauthorized")
    assert_problem(await booking.get(URL, headers=bearer("ak_nonsense")), 401, "unauthorized")
    for key in (tenant.admin_key, platform_reader):
        assert_problem(await booking.get(URL, headers=bearer(key)), 403, "forbidden")
        refused = await booking.delete(f"{URL}/{some_id}", headers=bearer(key))
        assert_problem(refused, 403, "forbidden")
    still = await booking.get(URL, headers=bearer(operator))
    assert {i["id"]: i for i in still.json()["items"]}[some_id]["revoked_at"] is None

    # A company key's id is no platform key: 404, and the company key keeps working.
    company_keys = await booking.get(f"{ADMIN}/api-keys", headers=tenant.headers)
    company_key_id = company_keys.json()["items"][0]["id"]
    missing = await booking.delete(f"{URL}/{company_key_id}", headers=bearer(operator))
    assert_problem(missing, 404, "not_found")
    assert_problem(
        await booking.delete(f"{URL}/no-such-id", headers=bearer(operator)), 404, "not_found"
    )
    assert (await booking.get(f"{ADMIN}/api-keys", headers=tenant.headers)).status_code == 200
