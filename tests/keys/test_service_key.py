"""`appointments run` reuses its service key across starts instead of minting one each time."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import update

from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.db.types import utcnow
from shared.models import ApiKey
from shared.security.api_keys import hash_key, verify_key
from tools.cli import with_service_key
from tools.key_store import SERVICE_KEY_FILE, service_key


async def test_the_kept_service_key_is_reused_while_it_verifies(
    db: Database, tmp_path: Path
) -> None:
    first, first_reused = await service_key(db, tmp_path)
    second, second_reused = await service_key(db, tmp_path)

    assert (first_reused, second_reused) == (False, True)
    assert second == first
    kept = tmp_path / SERVICE_KEY_FILE
    assert kept.read_text().strip() == first
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    async with db.transaction(SYSTEM, write=False) as session:
        verified = await verify_key(session, first)
    assert verified is not None
    assert (verified.company_id, verified.scopes) == (None, ("service",))

    # Revoked meanwhile (by an operator): the next start issues and keeps a new one.
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            update(ApiKey).where(ApiKey.key_hash == hash_key(first)).values(revoked_at=utcnow()),
            execution_options={"skip_tenant_filter": True},
        )
    third, third_reused = await service_key(db, tmp_path)
    assert third_reused is False
    assert third != first
    assert kept.read_text().strip() == third


def test_run_twice_starts_with_the_same_service_key(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVICE_API_KEY", "restored after the test")
    unset = settings.model_copy(update={"service_api_key": None})

    first = with_service_key(unset, tmp_path)
    second = with_service_key(unset, tmp_path)

    assert first.service_api_key is not None
    assert second.service_api_key == first.service_api_key
    assert os.environ["SERVICE_API_KEY"] == first.service_api_key  # what the children inherit
    # An explicit SERVICE_API_KEY always wins and nothing is issued.
    given = settings.model_copy(update={"service_api_key": "ak_given"})
    assert with_service_key(given, tmp_path).service_api_key == "ak_given"
