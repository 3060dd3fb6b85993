"""The real `appointments` command in a subprocess: migrate, seed-demo, create-api-key."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from shared.security.api_keys import hash_key
from tests.cli.conftest import Cli

JSON_KEYS = {
    "company_id",
    "api_key",
    "retell_api_key",
    "calcom_webhook_secret",
    "timezone",
    "branches",
    "services",
    "staff",
}


def stored_key(db_file: Path, plaintext: str) -> tuple[str | None, list[str], object]:
    """(company_id, scopes, revoked_at) of the key row matching `plaintext`."""
    with sqlite3.connect(db_file) as conn:
        row = conn.execute(
            "SELECT company_id, scopes, revoked_at FROM api_keys WHERE key_hash = ?",
            (hash_key(plaintext),),
        ).fetchone()
    assert row is not None, "no such key stored"
    return row[0], json.loads(row[1]), row[2]


def test_migrate_seed_demo_and_create_api_key(cli: Cli, tmp_path: Path) -> None:
    db_file = tmp_path / "appointments.db"

    migrated = cli("migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "is at revision" in migrated.stdout

    seeded = cli("seed-demo", "--json")
    assert seeded.returncode == 0, seeded.stderr
    first = json.loads(seeded.stdout)
    assert set(first) == JSON_KEYS
    assert len(first["branches"]) >= 2 and len(first["staff"]) == 3
    assert len(first["services"]) == 4

    again = json.loads(cli("seed-demo", "--json").stdout)
    assert again == first, "the same tenant and the same, still working, demo key"
    assert stored_key(db_file, again["api_key"]) == (first["company_id"], ["admin"], None)

    # What `make run` shows: the key and the four docs URLs.
    summary = cli("seed-demo")
    assert summary.returncode == 0, summary.stderr
    assert first["company_id"] in summary.stdout
    key_line = next(line for line in summary.stdout.splitlines() if "API key" in line)
    assert key_line.split()[-1].startswith("ak_")
    for port in (8001, 8002, 8003, 8004):
        assert f"http://127.0.0.1:{port}/docs" in summary.stdout

    company_key = cli(
        "create-api-key",
        "--company-id",
        first["company_id"],
        "--scopes",
        "agent,admin",
        "--name",
        "ops",
    )
    assert company_key.returncode == 0, company_key.stderr
    plaintext = company_key.stdout.strip()
    assert stored_key(db_file, plaintext) == (first["company_id"], ["admin", "agent"], None)

    platform_key = cli("create-api-key", "--platform", "--scopes", "admin", "--name", "platform")
    assert platform_key.returncode == 0, platform_key.stderr
    assert stored_key(db_file, platform_key.stdout.strip())[0] is None

    unknown = cli("create-api-key", "--company-id", "nope", "--scopes", "admin", "--name", "x")
    assert unknown.returncode == 1 and "no company" in unknown.stderr
    bad_scope = cli("create-api-key", "--platform", "--scopes", "root", "--name", "x")
    assert bad_scope.returncode == 2 and "root" in bad_scope.stderr
