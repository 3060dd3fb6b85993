"""The /ops sign-in cookie: an opaque session token (never the key or its prefix), `Secure`
over TLS, ended by revoking the key, by signing out, and useless when forged."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from services.booking.ops.session import PREFIX
from shared.db.engine import Database
from shared.security.api_keys import parse_key
from tests.conftest import Services
from tests.ops.test_failed_bookings import operator
from tests.support.factories import create_salon

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
async def clients(services: Services) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """Fresh clients (their own cookie jars) for http and https."""
    app = services.apps["booking"]
    made = {
        scheme: httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=f"{scheme}://booking.test"
        )
        for scheme in ("http", "https")
    }
    yield made
    for client in made.values():
        await client.aclose()


async def operator_key(db: Database) -> tuple[str, str]:
    """(company id, plaintext operator key)."""
    salon = await create_salon(db)
    headers = await operator(db, salon.tenant.company_id)
    return salon.tenant.company_id, headers["Authorization"].removeprefix("Bearer ")


async def sign_in(client: httpx.AsyncClient, key: str, **headers: str) -> httpx.Response:
    answer = await client.post("/ops/login", content=f"api_key={key}", headers=FORM | headers)
    assert answer.status_code == 303, answer.text
    return answer


def cookie_attributes(answer: httpx.Response) -> tuple[str, set[str]]:
    """The ops_session cookie's value and its attributes (lower case, without values)."""
    [header] = answer.headers.get_list("set-cookie")
    first, *attributes = [part.strip() for part in header.split(";")]
    name, _, value = first.partition("=")
    assert name == "ops_session"
    return value, {a.split("=")[0].lower() for a in attributes} | {a.lower() for a in attributes}


async def redis_of(services: Services) -> Redis:
    redis: Redis = services.apps["booking"].state.redis
    return redis


async def test_the_cookie_holds_an_opaque_token_and_opens_the_page(
    clients: dict[str, httpx.AsyncClient], db: Database, services: Services
) -> None:
    company_id, key = await operator_key(db)
    answer = await sign_in(clients["http"], key)
    value, attributes = cookie_attributes(answer)
    prefix = parse_key(key)
    assert prefix is not None and prefix not in value and key not in value
    assert len(value) >= 40
    assert {"httponly", "samesite=strict", "path=/ops"} <= attributes
    assert "secure" not in attributes  # plain http
    page = await clients["http"].get("/ops", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert company_id in page.text
    assert "Sign out" in page.text
    stored = await (await redis_of(services)).get(
        PREFIX + hashlib.sha256(value.encode()).hexdigest()
    )
    assert stored is not None and key not in stored.decode() and prefix not in stored.decode()


async def test_the_cookie_is_secure_over_tls(
    clients: dict[str, httpx.AsyncClient], db: Database
) -> None:
    _, key = await operator_key(db)
    _, over_https = cookie_attributes(await sign_in(clients["https"], key))
    assert {"secure", "httponly", "samesite=strict", "path=/ops"} <= over_https
    assert (await clients["https"].get("/ops")).status_code == 200
    # Behind a TLS-terminating proxy that says so:
    _, proxied = cookie_attributes(
        await sign_in(clients["http"], key, **{"X-Forwarded-Proto": "https"})
    )
    assert "secure" in proxied


async def test_revoking_the_key_ends_the_session(
    clients: dict[str, httpx.AsyncClient], db: Database, services: Services
) -> None:
    salon = await create_salon(db)
    created = await services.clients["booking"].post(
        "/v1/admin/api-keys",
        json={"name": "ops browser", "scopes": ["operator"]},
        headers=salon.headers,
    )
    assert created.status_code == 201, created.text
    value, _ = cookie_attributes(await sign_in(clients["http"], created.json()["key"]))
    assert (await clients["http"].get("/ops")).status_code == 200
    revoked = await services.clients["booking"].delete(
        f"/v1/admin/api-keys/{created.json()['id']}", headers=salon.headers
    )
    assert revoked.status_code == 204
    page = await clients["http"].get("/ops")
    assert page.status_code == 401
    assert "The session has ended" in page.text
    assert 'ops_session=""' in page.headers["set-cookie"]  # the browser forgets it
    session_key = PREFIX + hashlib.sha256(value.encode()).hexdigest()
    assert await (await redis_of(services)).exists(session_key) == 0


async def test_signing_out_ends_the_session_for_a_copied_cookie_too(
    clients: dict[str, httpx.AsyncClient], db: Database
) -> None:
    _, key = await operator_key(db)
    value, _ = cookie_attributes(await sign_in(clients["http"], key))
    out = await clients["http"].post("/ops/logout")
    assert out.status_code == 303
    copied = await clients["https"].get("/ops", headers={"Cookie": f"ops_session={value}"})
    assert copied.status_code == 401


@pytest.mark.parametrize("value", ["forged", "x" * 43, "ak_000000000000_" + "x" * 40, "é" * 200])
async def test_a_forged_or_raw_key_cookie_opens_nothing(
    clients: dict[str, httpx.AsyncClient], db: Database, value: str
) -> None:
    _, key = await operator_key(db)
    for cookie in (value, key):  # a raw key in the cookie is no session either
        page = await clients["http"].get(
            "/ops", headers={"Cookie": f"ops_session={cookie}; ops_key={key}".encode()}
        )
        assert page.status_code == 401
