"""`appointments info`: the kept demo key, the docs, ops and mail URLs, and which services
answer; the box `appointments run` prints once ready (tests/cli/test_run.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from shared.config import Settings
from tests.cli.conftest import Cli
from tests.cli.test_run import free_ports
from tools.cli_info import boxed, gather, info_lines
from tools.key_store import write_key

KEY = "ak_0123456789ab_" + "x" * 43
COMPANY = "c0ffee00-0000-4000-8000-000000000001"


def test_info_prints_the_kept_key_and_urls_and_says_nothing_runs(
    cli: Cli, cli_env: dict[str, str], tmp_path: Path
) -> None:
    ports = free_ports(6)
    names = ("BOOKING", "POLICY", "WEBHOOKS", "NOTIFICATIONS", "DEV_OUTBOX_SMTP", "DEV_OUTBOX_HTTP")
    for name, port in zip(names, ports, strict=True):
        cli_env[f"{name}_PORT"] = str(port)
    write_key(tmp_path / f"demo-key.{COMPANY}", KEY)  # beside the SQLite file: the state dir

    shown = cli("info")

    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    width = len(lines[0])
    assert lines[0] == lines[-1] == "+" + "-" * (width - 2) + "+"
    assert all(len(line) == width and line[0] == line[-1] == "|" for line in lines[1:-1])
    body = [line[2:-2].rstrip() for line in lines[1:-1]]
    booking = f"http://127.0.0.1:{ports[0]}"
    assert body[0] == f"API key (admin, company {COMPANY}): {KEY}"
    assert body[1] == f'  curl -H "Authorization: Bearer {KEY}" {booking}/v1/admin/branches'
    assert body[2] == "API docs (Swagger UI, ReDoc):"
    for row, (name, port) in zip(
        body[3:7],
        zip(("booking", "policy", "webhooks", "notifications"), ports[:4], strict=True),
        strict=True,
    ):
        base = f"http://127.0.0.1:{port}"
        assert row == f"  {name:<14} {base}/docs  {base}/redoc  not running"
    assert body[7:] == [
        f"ops page: {booking}/ops (sign in with the API key)",
        f"mail: http://127.0.0.1:{ports[5]}/  not running",
        "not running: start everything with `make run` (or `appointments run`)",
    ]


def test_info_says_why_no_mail_catcher_runs_when_smtp_is_configured(
    cli: Cli, cli_env: dict[str, str], tmp_path: Path
) -> None:
    cli_env["SMTP_HOST"] = "smtp.example.com"
    shown = cli("info")
    assert shown.returncode == 0, shown.stderr
    body = [line[2:-2].rstrip() for line in shown.stdout.splitlines()[1:-1]]
    assert body[-2] == (
        "mail: not started (SMTP_HOST configured: messages go to the real relay and gateways)"
    )


def test_info_without_a_kept_key_names_the_command_that_makes_one(cli: Cli, tmp_path: Path) -> None:
    elsewhere = tmp_path / "keys"
    shown = cli("info", "--state-dir", str(elsewhere))
    assert shown.returncode == 0, shown.stderr
    assert f"| API key: none kept in {elsewhere}/ (run `appointments seed-demo`)" in shown.stdout
    write_key(elsewhere / f"demo-key.{COMPANY}", KEY)
    assert (
        f"API key (admin, company {COMPANY}): {KEY}"
        in cli("info", "--state-dir", str(elsewhere)).stdout
    )


def test_newest_kept_key_first_and_states_from_the_runner(tmp_path: Path) -> None:
    write_key(tmp_path / "demo-key.old", "ak_old")
    os.utime(tmp_path / "demo-key.old", (1_000_000, 1_000_000))
    write_key(tmp_path / "demo-key.new", "ak_new")
    (tmp_path / "demo-key.empty").write_text("\n")
    settings = Settings(
        environment="test", booking_port=9001, policy_port=9002, dev_outbox_http_port=9025
    )
    info = gather(
        settings, tmp_path, states={"booking": "ready", "policy": "not ready", "mail": "ready"}
    )
    lines = info_lines(info)
    assert lines[-1] == "mail: http://127.0.0.1:9025/"
    assert lines[:3] == [
        "API key (admin, company new): ak_new",
        "API key (admin, company old): ak_old",
        '  curl -H "Authorization: Bearer ak_new" http://127.0.0.1:9001/v1/admin/branches',
    ]
    assert "  booking        http://127.0.0.1:9001/docs  http://127.0.0.1:9001/redoc" in lines
    assert (
        "  policy         http://127.0.0.1:9002/docs  http://127.0.0.1:9002/redoc  not ready"
        in lines
    )
    assert boxed(["ab", "abcd"]) == "+------+\n| ab   |\n| abcd |\n+------+"


def test_make_run_installs_no_dev_extras() -> None:
    root = Path(__file__).resolve().parents[2]

    def planned(target: str) -> list[str]:
        done = subprocess.run(
            ["make", "-n", "-B", target], cwd=root, capture_output=True, text=True, check=True
        )
        return [line for line in done.stdout.splitlines() if "pip install" in line]

    run_installs = planned("run")
    assert any(line.endswith("-c constraints.txt -e .") for line in run_installs), run_installs
    assert not any("[dev]" in line for line in run_installs), run_installs
    assert any("-e '.[dev]'" in line for line in planned("install"))
    assert any("-e '.[dev]'" in line for line in planned("test"))
