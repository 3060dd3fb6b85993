"""The development outbox (tools/dev_outbox.py) as `appointments run` starts it: a subprocess on
free loopback ports. Real e-mail over SMTP (aiosmtplib, and our own SMTP adapter), real gateway
calls (httpx, and our own SMS/WhatsApp adapter), then the page and the JSON."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
import psutil
import pytest

from services.notifications.channels.base import OutgoingMessage, PermanentDeliveryError
from services.notifications.channels.email import SmtpEmailAdapter
from services.notifications.channels.http_provider import HttpMessagingAdapter
from shared.config import Settings
from tests.cli.test_run import free_ports

TOKEN = "dev-outbox-test-token"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Outbox:
    proc: subprocess.Popen[bytes]
    smtp_port: int
    http_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, trust_env=False, timeout=5)

    async def items(self, query: str = "") -> list[dict[str, Any]]:
        async with self.client() as client:
            response = await client.get(f"/messages{query}")
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def sms(
        self, key: str, body: Any, token: str = TOKEN, channel: str = "sms"
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        if key:
            headers["Idempotency-Key"] = key
        async with self.client() as client:
            return await client.post(f"/gateway/{channel}/v1/messages", json=body, headers=headers)


@pytest.fixture(scope="module")
def outbox() -> Iterator[Outbox]:
    smtp_port, http_port = free_ports(2)
    env = {**os.environ, "DEV_OUTBOX_TOKEN": TOKEN}
    command = [sys.executable, "-m", "tools.dev_outbox"]
    command += ["--smtp-port", str(smtp_port), "--http-port", str(http_port)]
    proc = subprocess.Popen(command, cwd=ROOT, env=env)
    running = Outbox(proc, smtp_port, http_port)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, f"the outbox exited with {proc.returncode}"
            try:
                if httpx.get(f"{running.url}/health", trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the outbox did not answer within 20 s"
            time.sleep(0.1)
        yield running
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0, "a SIGTERM ends the outbox cleanly"


def confirmation(delivery_id: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "Salon Demo <noreply@salon.test>"
    mail["To"] = "erika@example.com"
    mail["Subject"] = "Terminbestätigung: Damenhaarschnitt am 16.12.2026"
    mail["Message-ID"] = f"<{delivery_id}@appointments>"
    mail.set_content("Hallo Erika,\n\nIhr Termin ist bestätigt.", charset="utf-8")
    mail.add_alternative("<p>Hallo <b>Erika</b> &amp; <script>x()</script></p>", subtype="html")
    return mail


async def test_an_email_and_a_text_message_are_listed_with_their_exact_content(
    outbox: Outbox,
) -> None:
    await aiosmtplib.send(
        confirmation("dlv-mail-1"), hostname="127.0.0.1", port=outbox.smtp_port, timeout=5
    )
    sent = {"channel": "sms", "to": "+491701234567", "body": "Ihr Termin am 16.12. <9 Uhr>"}
    answer = await outbox.sms("dlv-sms-1", {**sent, "sender": "Salon"})
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"id": answer.json()["id"], "status": "queued"}

    [sms, mail] = await outbox.items("?ids=dlv-mail-1,dlv-sms-1")
    assert mail["channel"] == "email" and mail["delivery_id"] == "dlv-mail-1"
    assert mail["subject"] == "Terminbestätigung: Damenhaarschnitt am 16.12.2026"
    assert mail["to"] == "erika@example.com"
    assert mail["from"] == "Salon Demo <noreply@salon.test>"
    assert mail["body"] == "Hallo Erika,\n\nIhr Termin ist bestätigt."
    assert mail["html"] == "<p>Hallo <b>Erika</b> &amp; <script>x()</script></p>\n"
    assert sms == {
        "id": answer.json()["id"],
        "channel": "sms",
        "delivery_id": "dlv-sms-1",
        "from": "Salon",
        "to": "+491701234567",
        "subject": None,
        "body": "Ihr Termin am 16.12. <9 Uhr>",
        "html": None,
        "received_at": sms["received_at"],
    }
    assert sms["received_at"].endswith("+00:00") and sms["received_at"] > mail["received_at"]

    async with outbox.client() as client:
        page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    html = page.text
    assert "Terminbestätigung: Damenhaarschnitt am 16.12.2026" in html
    assert "Hallo Erika,\n\nIhr Termin ist bestätigt." in html
    assert "Ihr Termin am 16.12. &lt;9 Uhr&gt;" in html, "escaped"
    assert "&lt;script&gt;x()&lt;/script&gt;" in html and "<script" not in html
    assert "http://" not in html.replace(outbox.url, ""), "no CDN, nothing from elsewhere"
    assert html.index("Ihr Termin am 16.12.") < html.index("Hallo Erika"), "newest first"


async def test_our_own_adapters_deliver_to_it(outbox: Outbox) -> None:
    settings = Settings(
        _env_file=None, smtp_host="127.0.0.1", smtp_port=outbox.smtp_port, smtp_security="none"
    )
    mail = OutgoingMessage("email", "kunde@example.com", "Bestätigt", "Bis bald!", "dlv-a-1")
    result = await SmtpEmailAdapter(settings).send(mail)
    assert result.provider_id == "<dlv-a-1@appointments>"
    async with httpx.AsyncClient(trust_env=False) as http:
        whatsapp = HttpMessagingAdapter(
            "whatsapp", f"{outbox.url}/gateway/whatsapp", TOKEN, http, 2
        )
        text = OutgoingMessage("whatsapp", "+4915112345678", None, "Hallo per WhatsApp", "dlv-a-2")
        first = await whatsapp.send(text)
        again = await whatsapp.send(text)
        assert first.provider_id == again.provider_id
        wrong = HttpMessagingAdapter("sms", f"{outbox.url}/gateway/sms", "nope", http, 2)
        with pytest.raises(PermanentDeliveryError, match="401"):
            await wrong.send(OutgoingMessage("sms", "+4915112345678", None, "x", "dlv-a-3"))

    items = await outbox.items("?ids=dlv-a-1,dlv-a-2,dlv-a-3")
    assert [(i["delivery_id"], i["channel"], i["subject"], i["body"]) for i in items] == [
        ("dlv-a-2", "whatsapp", None, "Hallo per WhatsApp"),
        ("dlv-a-1", "email", "Bestätigt", "Bis bald!"),
    ]


async def test_the_same_idempotency_key_is_stored_once(outbox: Outbox) -> None:
    body = {"channel": "sms", "to": "+491701111111", "body": "einmal"}
    first = await outbox.sms("dlv-idem-1", body)
    again = await outbox.sms("dlv-idem-1", body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    changed = await outbox.sms("dlv-idem-1", {**body, "body": "anders"})
    assert changed.status_code == 422
    assert changed.json() == {"error": "Idempotency-Key reused with a different request"}
    assert [i["body"] for i in await outbox.items("?ids=dlv-idem-1")] == ["einmal"]


async def test_refusals_answer_as_the_gateway_api_and_store_nothing(outbox: Outbox) -> None:
    body = {"channel": "sms", "to": "+491702222222", "body": "nie"}
    wrong = await outbox.sms("dlv-refused-1", body, token="wrong")
    assert (wrong.status_code, wrong.json()) == (401, {"error": "invalid or missing bearer token"})
    missing = await outbox.sms("", body)
    assert missing.status_code == 400
    assert missing.json() == {"error": "Idempotency-Key header is required"}
    bad = await outbox.sms("dlv-refused-2", {"channel": "sms", "to": "0170", "body": " "})
    assert bad.status_code == 422
    assert bad.json()["error"] == (
        "to must be an E.164 number such as +491701234567; body must be a non-empty string"
    )
    crossed = await outbox.sms("dlv-refused-3", body, channel="whatsapp")
    assert crossed.json() == {"error": "channel must be 'whatsapp' on /gateway/whatsapp"}
    unknown = await outbox.sms("dlv-refused-4", body, channel="fax")
    assert unknown.status_code == 404
    ids = "?ids=dlv-refused-1,dlv-refused-2,dlv-refused-3,dlv-refused-4"
    assert await outbox.items(ids) == []


async def test_messages_filter_by_delivery_id_and_limit(outbox: Outbox) -> None:
    for n in range(3):
        body = {"channel": "sms", "to": "+491703333333", "body": f"Nachricht {n}"}
        assert (await outbox.sms(f"dlv-filter-{n}", body)).status_code == 201
    only = await outbox.items("?ids=dlv-filter-0,dlv-filter-2,someone-else")
    assert [i["body"] for i in only] == ["Nachricht 2", "Nachricht 0"]
    assert [i["body"] for i in await outbox.items("?limit=2")] == ["Nachricht 2", "Nachricht 1"]
    assert await outbox.items("?ids=") == []
    async with outbox.client() as client:
        for bad in ("0", "201", "x"):
            refused = await client.get(f"/messages?limit={bad}")
            assert refused.status_code == 422
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["errors"] == [
                {"field": "limit", "message": "limit must be a whole number from 1 to 200"}
            ]


def test_it_listens_on_127_0_0_1_only(outbox: Outbox) -> None:
    listening = {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(outbox.proc.pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }
    assert listening == {("127.0.0.1", outbox.smtp_port), ("127.0.0.1", outbox.http_port)}
    others = [
        address.address
        for addresses in psutil.net_if_addrs().values()
        for address in addresses
        if address.family == socket.AF_INET and not address.address.startswith("127.")
    ]
    for ip in others:
        for port in (outbox.smtp_port, outbox.http_port):
            with socket.socket() as sock, pytest.raises(OSError):
                sock.settimeout(1)
                sock.connect((ip, port))
