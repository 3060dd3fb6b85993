"""`make run` catches what would be sent (issue 16, item 3): the outbox is one more supervised
child, the services' e-mail, SMS and WhatsApp go to it unless the operator configured real
delivery, and a booking's confirmation shows up on the mail page and in the ops page's data."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from markupsafe import escape

from services.booking.ops.messages import recent_messages
from shared.config import Settings
from shared.db.engine import Database
from tests.cli.conftest import Cli
from tests.cli.test_run import Running, appointments_run, free_ports
from tools.children import MAIL_CHILD, child_commands, child_env, mail_catcher

MAIL_WITHIN_S = 30.0
# Readiness itself is tests/cli/test_run.py's subject: here a loaded machine may take longer.
READY_WITHIN_S = 120.0


def ready_box(running: Running) -> list[str]:
    """The box `run` prints once every child answers (supervisor's own readiness check)."""
    deadline = time.monotonic() + READY_WITHIN_S
    while "all services ready after" not in running.output():
        assert running.proc.poll() is None, "run exited early:\n" + running.output()[-3000:]
        assert time.monotonic() < deadline, "not ready:\n" + running.output()[-3000:]
        time.sleep(0.2)
    return running.wait_box()


def test_run_plans_the_catcher_and_points_every_channel_at_it() -> None:
    settings = Settings(_env_file=None, dev_outbox_smtp_port=2525, dev_outbox_http_port=2580)
    catcher = mail_catcher(settings, token="t0k")
    assert catcher is not None
    assert child_commands(settings, catcher)[MAIL_CHILD][1:] == [
        "-m",
        "tools.dev_outbox",
        "--smtp-port",
        "2525",
        "--http-port",
        "2580",
    ]
    assert MAIL_CHILD not in child_commands(settings)
    env = child_env(settings, "redis://127.0.0.1:6379/0", catcher)
    assert {name: env[name] for name in env if name in EXPECTED} == EXPECTED
    assert "DEV_OUTBOX_URL" not in child_env(settings, "redis://127.0.0.1:6379/0")
    fresh = mail_catcher(settings)
    assert fresh is not None and len(fresh.token) >= 32, "a random token per run"


EXPECTED = {
    "SMTP_HOST": "127.0.0.1",
    "SMTP_PORT": "2525",
    "SMTP_SECURITY": "none",
    "SMS_PROVIDER_URL": "http://127.0.0.1:2580/gateway/sms",
    "SMS_PROVIDER_TOKEN": "t0k",
    "WHATSAPP_PROVIDER_URL": "http://127.0.0.1:2580/gateway/whatsapp",
    "WHATSAPP_PROVIDER_TOKEN": "t0k",
    "DEV_OUTBOX_URL": "http://127.0.0.1:2580",
    "DEV_OUTBOX_TOKEN": "t0k",
}


def test_configured_delivery_or_production_starts_no_catcher() -> None:
    assert mail_catcher(Settings(_env_file=None, smtp_host="smtp.example.com")) is None
    assert mail_catcher(Settings(_env_file=None, sms_provider_url="https://sms.test")) is None
    production = Settings(_env_file=None, environment="production", secret_key="s" * 40)
    assert mail_catcher(production) is None


@pytest.mark.slow
def test_run_with_smtp_configured_says_so_and_starts_no_catcher(
    cli: Cli, cli_env: dict[str, str], tmp_path: Path
) -> None:
    assert cli("migrate").returncode == 0
    cli_env["SMTP_HOST"] = "smtp.example.com"
    with appointments_run(tmp_path, cli_env) as running:
        box = ready_box(running)
        assert box[-2] == (
            "mail: not started (SMTP_HOST configured: messages go to the real relay and gateways)"
        )
        output = running.output()
    assert "mail catcher not started: SMTP_HOST configured" in output
    assert "started mail (pid" not in output


def first_slot(client: httpx.Client, service_id: str) -> dict[str, Any]:
    day = date.today() + timedelta(days=3)
    for _ in range(14):
        if day.weekday() < 5:
            slots = client.get(
                "/v1/availability", params={"service_id": service_id, "date": day.isoformat()}
            )
            assert slots.status_code == 200, slots.text
            if slots.json()["slots"]:
                slot: dict[str, Any] = slots.json()["slots"][0]
                return slot
        day += timedelta(days=1)
    raise AssertionError("no free slot within two weeks")


async def ops_messages(database_url: str, company_id: str, outbox_url: str) -> list[Any]:
    db = Database(settings=Settings(_env_file=None, database_url=database_url))
    try:
        async with db.transaction(company_id) as session:
            return await recent_messages(session, company_id, outbox_url)
    finally:
        await db.dispose()


@pytest.mark.slow
def test_a_bookings_confirmation_arrives_on_the_mail_page(
    cli: Cli, cli_env: dict[str, str], tmp_path: Path
) -> None:
    assert cli("migrate").returncode == 0
    seeded = cli("seed-demo", "--json")
    assert seeded.returncode == 0, seeded.stderr
    demo = json.loads(seeded.stdout)
    service = demo["services"][0]
    email = f"erika.{time.monotonic_ns()}@example.com"
    smtp_port, page_port = free_ports(2)
    cli_env.update(DEV_OUTBOX_SMTP_PORT=str(smtp_port), DEV_OUTBOX_HTTP_PORT=str(page_port))
    with appointments_run(tmp_path, cli_env) as running:
        outbox = f"http://127.0.0.1:{page_port}"
        assert f"mail: {outbox}/" in ready_box(running)
        info = [line[2:-2].rstrip() for line in cli("info").stdout.splitlines()]
        assert f"mail: {outbox}/" in info, "answering: no state after the URL"
        booking = f"http://127.0.0.1:{running.ports['booking']}"
        headers = {"Authorization": f"Bearer {demo['api_key']}"}
        with httpx.Client(base_url=booking, headers=headers, trust_env=False, timeout=10) as api:
            slot = first_slot(api, service["id"])
            created = api.post(
                "/v1/appointments",
                json={
                    "service_id": service["id"],
                    "staff_id": slot["staff_id"],
                    "start": slot["start"],
                    "customer": {"name": "Erika Muster", "phone": "+4915112345678", "email": email},
                },
            )
        assert created.status_code == 201, created.text
        reference = created.json()["reference"]

        deadline = time.monotonic() + MAIL_WITHIN_S
        mails: list[dict[str, Any]] = []
        texts: list[dict[str, Any]] = []
        with httpx.Client(base_url=outbox, trust_env=False, timeout=5) as client:
            while not (mails and texts):
                items = client.get("/messages").json()["items"]
                mails = [i for i in items if i["channel"] == "email" and i["to"] == email]
                texts = [i for i in items if i["channel"] == "sms" and reference in i["body"]]
                if not (mails and texts):
                    assert time.monotonic() < deadline, (
                        f"no e-mail and SMS within {MAIL_WITHIN_S:g} s: {items}\n"
                        + running.output()[-3000:]
                    )
                    time.sleep(0.3)
            page = client.get("/").text
        [confirmation] = mails
        assert confirmation["subject"].startswith(f"Terminbestätigung: {service['name']} am ")
        assert reference in confirmation["body"]
        [sms] = texts
        assert sms["to"] == "+4915112345678" and service["name"] in sms["body"]
        assert str(escape(confirmation["subject"])) in page

        shown = asyncio.run(ops_messages(cli_env["DATABASE_URL"], demo["company_id"], outbox))
    confirmations = [m for m in shown if m.channel == "email"]
    assert [m.subject for m in confirmations] == [confirmation["subject"]]
    assert confirmations[0].body == confirmation["body"]
    assert confirmations[0].event_type == "booking_confirmed"
    assert confirmations[0].status == "sent"
