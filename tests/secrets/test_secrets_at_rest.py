"""Tenant secrets are stored as Fernet tokens: no table, dump or database file holds them in
clear text, every read path sees the plaintext, and a wrong SECRET_KEY fails cleanly."""

from __future__ import annotations

import logging
import secrets
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url

from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.models import Company
from shared.security.secrets_at_rest import (
    EncryptedString,
    SecretKeyError,
    decrypt,
    encrypt,
    use_keys,
)
from tests.admin.support import ADMIN
from tests.conftest import Services
from tests.support.factories import Tenant, create_tenant
from tests.support.tenant_seed import calcom_delivery, calcom_headers
from tools.demo import seed_demo


async def dump(db: Database) -> str:
    """Every value of every table as text (what a mysqldump / .dump would contain)."""
    chunks: list[str] = []
    async with db.engine.connect() as conn:
        tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        for table in tables:
            rows = await conn.execute(text(f"SELECT * FROM {table}"))
            chunks.extend(repr(tuple(row)) for row in rows)
    return "\n".join(chunks)


def sqlite_bytes(db: Database) -> bytes:
    """The SQLite database file and its write-ahead log, as stored on disk.

    Read by another process: closing a descriptor of the file in this one would drop the
    POSIX locks SQLite holds on it (its documented pitfall), and later writes fail."""
    path = Path(make_url(db.url).database or "")
    files = [str(p) for p in (path, Path(f"{path}-wal")) if p.exists()]
    return subprocess.run(["cat", *files], capture_output=True, check=True).stdout


async def stored(db: Database, company_id: str, column: str) -> str | None:
    async with db.engine.connect() as conn:
        value = await conn.scalar(
            text(f"SELECT {column} FROM companies WHERE id = :id"),
            {"id": company_id},
        )
    return value


async def assert_nowhere_in_clear(db: Database, backend: str, *plaintexts: str) -> None:
    everything = await dump(db)
    raw = sqlite_bytes(db) if backend == "sqlite" else b""
    for plaintext in plaintexts:
        assert plaintext not in everything
        assert plaintext.encode() not in raw


def test_tokens_decrypt_with_the_current_key_or_a_fallback() -> None:
    with use_keys("old-key"):
        old_token = encrypt("whsec_abc")
    with use_keys("new-key", ("old-key",)):
        assert decrypt(old_token) == "whsec_abc"
        new_token = encrypt("whsec_abc")
    assert new_token != old_token
    with use_keys("new-key"):
        assert decrypt(new_token) == "whsec_abc"
        with pytest.raises(SecretKeyError):
            decrypt(old_token)


def test_an_undecryptable_value_reads_as_absent_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with use_keys("one-key"):
        token = encrypt("key_live_secret")
    column = EncryptedString()
    with use_keys("another-key"), caplog.at_level(logging.ERROR):
        assert column.process_result_value(token, None) is None  # type: ignore[arg-type]
        assert column.process_result_value("not a token", None) is None  # type: ignore[arg-type]
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(messages) == 2
    assert all("SECRET_KEY_FALLBACKS" in m and token not in m for m in messages)


async def test_calcom_credentials_saved_over_the_api_are_stored_encrypted(
    booking: httpx.AsyncClient, db: Database, backend: str
) -> None:
    tenant = await create_tenant(db)
    api_key = f"cal_live_{secrets.token_hex(12)}"
    webhook_secret = f"whsec_{secrets.token_hex(12)}"
    put = await booking.put(
        f"{ADMIN}/integrations/calcom",
        headers=tenant.headers,
        json={"api_key": api_key, "webhook_secret": webhook_secret},
    )
    assert put.status_code == 200, put.text

    for column, plaintext in (
        ("calcom_api_key", api_key),
        ("calcom_webhook_secret", webhook_secret),
    ):
        token = await stored(db, tenant.company_id, column)
        assert token is not None and token.startswith("gAAAAA"), token
        assert plaintext not in token
        assert decrypt(token) == plaintext
    await assert_nowhere_in_clear(db, backend, api_key, webhook_secret)

    async with db.transaction(SYSTEM, write=False) as session:
        company = await session.scalar(select(Company).where(Company.id == tenant.company_id))
    assert company is not None
    assert (company.calcom_api_key, company.calcom_webhook_secret) == (api_key, webhook_secret)


async def test_the_demo_tenants_secrets_are_stored_encrypted(db: Database, backend: str) -> None:
    tenant = await seed_demo(db, f"Demo Salon {uuid.uuid4().hex[:10]}")

    token = await stored(db, tenant.company_id, "retell_api_key")
    assert token is not None and tenant.retell_api_key not in token
    assert decrypt(token) == tenant.retell_api_key
    await assert_nowhere_in_clear(db, backend, tenant.retell_api_key, tenant.calcom_webhook_secret)


async def test_a_secret_under_another_key_fails_the_signature_cleanly(
    services: Services, booking: httpx.AsyncClient, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    webhooks = services.clients["webhooks"]
    tenant: Tenant = await create_tenant(db)
    secret = f"whsec_{secrets.token_hex(12)}"
    with use_keys("a-key-this-installation-does-not-know"):
        async with db.transaction(SYSTEM) as session:
            company = await session.scalar(select(Company).where(Company.id == tenant.company_id))
            assert company is not None
            company.calcom_webhook_secret = secret
            company.calcom_api_key = "cal_live_unreadable_0000"

    raw = calcom_delivery(f"uid-{uuid.uuid4().hex}")
    with caplog.at_level(logging.ERROR):
        refused = await webhooks.post(
            f"/v1/webhooks/calcom/{tenant.company_id}",
            content=raw,
            headers=calcom_headers(raw, secret),
        )
        shown = await booking.get(f"{ADMIN}/integrations/calcom", headers=tenant.headers)
    assert refused.status_code == 401, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert shown.status_code == 200, shown.text
    assert shown.json()["configured"] is False
    assert shown.json()["api_key"] is None
    token = await stored(db, tenant.company_id, "calcom_webhook_secret")
    assert token is not None and token not in refused.text + shown.text
    assert any("tenant secret unreadable" in r.getMessage() for r in caplog.records)
