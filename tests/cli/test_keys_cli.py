"""The real `appointments` command: list and revoke keys, keep the demo key, rotate secrets."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

from shared.security.api_keys import hash_key, parse_key
from tests.cli.conftest import Cli


def revoked_at(db_file: Path, plaintext: str) -> object:
    with sqlite3.connect(db_file) as conn:
        row = conn.execute(
            "SELECT revoked_at FROM api_keys WHERE key_hash = ?", (hash_key(plaintext),)
        ).fetchone()
    assert row is not None
    return row[0]


def company_secrets(db_file: Path) -> tuple[str, str]:
    with sqlite3.connect(db_file) as conn:
        row = conn.execute("SELECT retell_api_key, calcom_webhook_secret FROM companies").fetchone()
    return row[0], row[1]


def test_list_and_revoke_api_keys(cli: Cli, tmp_path: Path) -> None:
    db_file = tmp_path / "appointments.db"
    assert cli("migrate").returncode == 0
    demo = json.loads(cli("seed-demo", "--json").stdout)
    platform = cli("create-api-key", "--platform", "--scopes", "admin", "--name", "ops team")
    assert platform.returncode == 0, platform.stderr
    platform_key = platform.stdout.strip()

    only_platform = json.loads(cli("list-api-keys", "--platform", "--json").stdout)
    assert [(k["prefix"], k["name"], k["company_id"], k["scopes"]) for k in only_platform] == [
        (parse_key(platform_key), "ops team", None, ["admin"])
    ]
    everything = json.loads(cli("list-api-keys", "--json").stdout)
    assert {k["prefix"] for k in everything} == {
        parse_key(platform_key),
        parse_key(demo["api_key"]),
    }
    assert platform_key not in cli("list-api-keys").stdout
    assert parse_key(platform_key) in cli("list-api-keys").stdout

    revoked = cli("revoke-api-key", parse_key(platform_key) or "")
    assert revoked.returncode == 0, revoked.stderr
    answer = json.loads(revoked.stdout)
    assert (answer["status"], answer["id"], answer["company_id"]) == (
        "revoked",
        only_platform[0]["id"],
        None,
    )
    assert revoked_at(db_file, platform_key) is not None
    again = cli("revoke-api-key", only_platform[0]["id"])
    assert json.loads(again.stdout)["status"] == "already_revoked"
    assert revoked_at(db_file, demo["api_key"]) is None, "only the named key is revoked"

    unknown = cli("revoke-api-key", "ffffffffffff")
    assert unknown.returncode == 1
    assert "no API key" in unknown.stderr


def test_seed_demo_again_prints_the_same_working_key(cli: Cli, tmp_path: Path) -> None:
    db_file = tmp_path / "appointments.db"
    assert cli("migrate").returncode == 0
    first = json.loads(cli("seed-demo", "--json").stdout)
    second = json.loads(cli("seed-demo", "--json").stdout)

    assert second == first
    assert revoked_at(db_file, first["api_key"]) is None
    kept = tmp_path / f"demo-key.{first['company_id']}"
    assert kept.read_text().strip() == first["api_key"]
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600

    # Once the kept key no longer works, a new one is issued (and kept).
    assert cli("revoke-api-key", first["api_key"]).returncode == 0
    third = json.loads(cli("seed-demo", "--json").stdout)
    assert third["api_key"] != first["api_key"]
    assert {**third, "api_key": None} == {**first, "api_key": None}
    assert revoked_at(db_file, third["api_key"]) is None
    assert kept.read_text().strip() == third["api_key"]
    assert json.loads(cli("seed-demo", "--json").stdout)["api_key"] == third["api_key"]


def test_rotate_secrets_under_a_new_secret_key(
    cli: Cli, cli_env: dict[str, str], tmp_path: Path
) -> None:
    db_file = tmp_path / "appointments.db"
    cli_env["SECRET_KEY"] = "the-old-secret-key"
    cli_env.pop("SECRET_KEY_FALLBACKS", None)
    assert cli("migrate").returncode == 0
    demo = json.loads(cli("seed-demo", "--json").stdout)
    before = company_secrets(db_file)
    assert demo["retell_api_key"] not in before[0]
    assert demo["calcom_webhook_secret"] not in before[1]

    cli_env["SECRET_KEY"] = "the-new-secret-key"
    cli_env["SECRET_KEY_FALLBACKS"] = "the-old-secret-key"
    rotated = cli("rotate-secrets")
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.strip() == "rotated 2 secrets under the current SECRET_KEY"
    after = company_secrets(db_file)
    assert after[0] != before[0] and after[1] != before[1]

    # The new key alone reads them now.
    cli_env.pop("SECRET_KEY_FALLBACKS")
    again = json.loads(cli("seed-demo", "--json").stdout)
    assert again["retell_api_key"] == demo["retell_api_key"]
    assert again["calcom_webhook_secret"] == demo["calcom_webhook_secret"]
    assert company_secrets(db_file) == after, "read, not rewritten"

    # A key that decrypts nothing: reported, exit code 1, values left alone.
    cli_env["SECRET_KEY"] = "an-unrelated-key"
    wrong = cli("rotate-secrets")
    assert wrong.returncode == 1
    assert wrong.stdout.strip() == "rotated 0 secrets under the current SECRET_KEY"
    assert "does not decrypt" in wrong.stderr
    assert company_secrets(db_file) == after
