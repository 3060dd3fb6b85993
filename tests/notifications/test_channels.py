"""Channel adapters against a real SMTP server and a real (fake) HTTP messaging gateway."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

import httpx
import pytest

from services.notifications.channels import (
    ChannelNotConfigured,
    HttpMessagingAdapter,
    OutgoingMessage,
    PermanentDeliveryError,
    SmtpEmailAdapter,
    TransientDeliveryError,
    adapter_for,
    adapters_from_settings,
    mask_recipient,
    message_id_for,
    normalize_recipient,
    recipient_key,
)
from services.notifications.channels.http_provider import parse_retry_after
from shared.config import Settings
from shared.redis.connection import free_port
from tests.support.fake_messaging import FakeMessagingProvider
from tests.support.smtp_server import SmtpTestServer

TOKEN = "gateway-token"
SUBJECT = "Ihr Termin am Donnerstag: Bestätigung für Jürgen Öztürk"
BODY = "Grüße aus dem Salon Schön!\nIhr Termin: Do, 26.11., 14:30 Uhr. Preis: 45,00 €\n"


def smtp_settings(port: int, **extra: str | float | None) -> Settings:
    values = {"smtp_host": "127.0.0.1", "smtp_port": port, "smtp_timeout_s": 2.0, **extra}
    return Settings.model_validate(values)


def email(
    to: str = "Max.Mustermann@Example.COM", key: str = "delivery-42", sender_name: str | None = None
) -> OutgoingMessage:
    return OutgoingMessage("email", to, SUBJECT, BODY, key, sender_name)


def sms(
    to: str = "0170 1234567", key: str = "delivery-7", sender_name: str | None = None
) -> OutgoingMessage:
    return OutgoingMessage("sms", to, None, "Bis morgen, Ihr Salon Schön", key, sender_name)


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpTestServer]:
    async with SmtpTestServer() as server:
        yield server


@pytest.fixture
async def gateway() -> AsyncIterator[FakeMessagingProvider]:
    async with FakeMessagingProvider(token=TOKEN) as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


# -- recipients ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "raw", "expected"),
    [
        ("email", " Max.Mustermann@Example.COM ", "Max.Mustermann@example.com"),
        ("email", "anna@bäckerei.de", "anna@bäckerei.de"),
        ("sms", "0170 1234567", "+491701234567"),
        ("sms", "+49 (170) 123-4567", "+491701234567"),
        ("whatsapp", "+43 664 1234567", "+436641234567"),
    ],
)
def test_normalize_recipient(channel: str, raw: str, expected: str) -> None:
    assert normalize_recipient(channel, raw) == expected


@pytest.mark.parametrize(
    ("channel", "raw", "message"),
    [
        ("email", "max@", "'max@' is not a valid e-mail address"),
        ("email", "max@@example.com", "'max@@example.com' is not a valid e-mail address"),
        ("email", "max.example.com", "'max.example.com' is not a valid e-mail address"),
        ("sms", "0170", "'0170' is not a valid phone number"),
        ("whatsapp", "hallo", "'hallo' is not a phone number"),
        ("fax", "+491701234567", "unknown channel 'fax'"),
    ],
)
def test_normalize_recipient_refuses(channel: str, raw: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(".", r"\.")):
        normalize_recipient(channel, raw)


@pytest.mark.parametrize(
    ("channel", "raw", "masked"),
    [
        ("email", "max@example.com", "m***@example.com"),
        ("email", "Max.Mustermann@Example.COM", "M***@example.com"),
        ("email", "a@b.de", "a***@b.de"),
        ("sms", "0170 1234567", "+49170*****67"),
        ("whatsapp", "+16502530000", "+1650*****00"),
        ("sms", "+4930123456", "+49301***56"),
        ("sms", "+6903101", "+690***1"),
        ("sms", "not a number", "***"),
        ("email", "nobody", "***"),
    ],
)
def test_mask_recipient(channel: str, raw: str, masked: str) -> None:
    assert mask_recipient(channel, raw) == masked


def test_recipient_key() -> None:
    assert (
        recipient_key("email", "max.mustermann@Example.com")
        == "b4c6649b5e6ac4d8e6ed216edb04f50b3622ac7c00b5ab0b1e46eee259bff172"
    )
    assert (
        recipient_key("sms", "0170 1234567")
        == recipient_key("sms", "+491701234567")
        == "6d0e1b9e2255b112ac3214055c4ff61101204aabcf53a47e83f7762a9e7e29c4"
    )
    assert (
        recipient_key("whatsapp", "+49 170 1234567")
        == "32abde674b2a48476e8c8893b8547bfae119070183da64819d0969cd4fbdc1e5"
    )
    with pytest.raises(ValueError, match="not a valid phone number"):
        recipient_key("sms", "12")


@pytest.mark.parametrize(
    ("channel", "key", "message"),
    [
        ("fax", "k1", "unknown channel 'fax'"),
        ("sms", "", "idempotency_key must be"),
        ("sms", "two words", "idempotency_key must be"),
        ("sms", "line\nbreak", "idempotency_key must be"),
        ("sms", "ä", "idempotency_key must be"),
        ("sms", "k" * 201, "idempotency_key must be"),
    ],
)
def test_outgoing_message_refuses(channel: str, key: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OutgoingMessage(channel=channel, to="x", subject=None, body="b", idempotency_key=key)


def test_message_id_for() -> None:
    assert message_id_for("delivery-42") == "<delivery-42@appointments>"
    assert message_id_for("d:42/1") == "<d%3A42/1@appointments>"
    assert message_id_for("a@b") == "<a%40b@appointments>"


# -- e-mail --------------------------------------------------------------------------------


async def test_email_delivered_with_umlauts_and_headers(smtp: SmtpTestServer) -> None:
    adapter = SmtpEmailAdapter(smtp_settings(smtp.port))
    before = datetime.now(UTC).replace(microsecond=0)

    result = await adapter.send(email(sender_name="Salon Schön"))

    assert result.provider_id == "<delivery-42@appointments>"
    [mail] = await smtp.wait_for(1)
    assert mail["Subject"] == SUBJECT
    assert mail["To"] == "Max.Mustermann@example.com"
    assert mail["From"].addresses[0].display_name == "Salon Schön"
    assert mail["From"].addresses[0].addr_spec == "noreply@localhost"
    assert mail["Message-ID"] == "<delivery-42@appointments>"
    assert mail["X-Notification-Id"] == "delivery-42"
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content_charset() == "utf-8"
    assert mail["Content-Transfer-Encoding"] == "quoted-printable"
    assert mail.get_content() == BODY
    sent_at = parsedate_to_datetime(mail["Date"])
    assert sent_at.utcoffset() == timedelta(0)
    assert before <= sent_at <= datetime.now(UTC)
    assert smtp.envelopes == [("noreply@localhost", ["Max.Mustermann@example.com"])]


async def test_email_default_sender_and_no_subject(smtp: SmtpTestServer) -> None:
    adapter = SmtpEmailAdapter(smtp_settings(smtp.port, smtp_from="Termine <termine@salon.de>"))
    message = OutgoingMessage("email", "anna@example.com", None, "Hallo", "k-2")

    await adapter.send(message)

    [mail] = await smtp.wait_for(1)
    assert str(mail["From"]) == "Termine <termine@salon.de>"
    assert "Subject" not in mail
    assert smtp.envelopes == [("termine@salon.de", ["anna@example.com"])]


async def test_email_resent_is_recognisable(smtp: SmtpTestServer) -> None:
    adapter = SmtpEmailAdapter(smtp_settings(smtp.port))

    first = await adapter.send(email(key="delivery-9"))
    second = await adapter.send(email(key="delivery-9"))
    await adapter.send(email(key="delivery-10"))

    await smtp.wait_for(3)
    assert first == second
    assert smtp.count_message_id("<delivery-9@appointments>") == 2
    assert smtp.count_message_id("delivery-10@appointments") == 1


async def test_email_idn_domain_goes_out_as_ascii_without_smtputf8() -> None:
    async with SmtpTestServer(smtputf8=False) as smtp:
        adapter = SmtpEmailAdapter(smtp_settings(smtp.port))
        await adapter.send(email(to="anna@Bäckerei.de"))
        await smtp.wait_for(1)
        assert smtp.envelopes == [("noreply@localhost", ["anna@xn--bckerei-5wa.de"])]


async def test_email_utf8_mailbox_needs_smtputf8(smtp: SmtpTestServer) -> None:
    await SmtpEmailAdapter(smtp_settings(smtp.port)).send(email(to="jürgen@example.com"))
    await smtp.wait_for(1)
    assert smtp.envelopes == [("noreply@localhost", ["jürgen@example.com"])]

    async with SmtpTestServer(smtputf8=False) as plain:
        adapter = SmtpEmailAdapter(smtp_settings(plain.port))
        with pytest.raises(PermanentDeliveryError, match=r"cannot deliver to j\*\*\*@example.com"):
            await adapter.send(email(to="jürgen@example.com"))
        assert plain.messages == []


async def test_email_550_is_permanent(smtp: SmtpTestServer) -> None:
    smtp.refuse("max.mustermann@example.com")
    adapter = SmtpEmailAdapter(smtp_settings(smtp.port))

    with pytest.raises(PermanentDeliveryError) as caught:
        await adapter.send(email())

    assert str(caught.value) == "SMTP refused M***@example.com: 550 5.1.1 Mailbox unavailable"
    assert smtp.messages == []
    await adapter.send(email(to="anna@example.com"))  # others still get through
    assert len(await smtp.wait_for(1)) == 1


async def test_email_451_is_transient(smtp: SmtpTestServer) -> None:
    smtp.defer(1)
    adapter = SmtpEmailAdapter(smtp_settings(smtp.port))

    with pytest.raises(TransientDeliveryError) as caught:
        await adapter.send(email())

    assert str(caught.value) == (
        "SMTP deferred M***@example.com: 451 4.3.0 Temporary failure, try again later"
    )
    assert caught.value.retry_after_s is None
    assert smtp.messages == []
    await adapter.send(email())  # the retry goes through
    assert smtp.count_message_id("<delivery-42@appointments>") == 1


async def test_email_invalid_recipient_is_permanent(smtp: SmtpTestServer) -> None:
    adapter = SmtpEmailAdapter(smtp_settings(smtp.port))
    with pytest.raises(PermanentDeliveryError, match=r"^invalid e-mail recipient \*\*\*$"):
        await adapter.send(email(to="max@@example.com"))
    with pytest.raises(PermanentDeliveryError, match="email adapter got a sms message"):
        await adapter.send(sms())


async def test_email_nothing_listening_is_transient() -> None:
    adapter = SmtpEmailAdapter(smtp_settings(free_port(), smtp_timeout_s=1.0))
    started = time.monotonic()

    with pytest.raises(TransientDeliveryError, match=r"^SMTP delivery to M\*\*\*@example.com"):
        await adapter.send(email())

    assert time.monotonic() - started < 1.0


async def test_email_silent_server_times_out_as_transient() -> None:
    # Accepts TCP connections (kernel backlog) but never greets: only the timeout ends it.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        adapter = SmtpEmailAdapter(smtp_settings(port, smtp_timeout_s=0.3))
        started = time.monotonic()

        with pytest.raises(TransientDeliveryError):
            await adapter.send(email())

        assert 0.25 <= time.monotonic() - started < 1.0


# -- SMS / WhatsApp gateway ----------------------------------------------------------------


def gateway_adapter(
    fake: FakeMessagingProvider,
    http: httpx.AsyncClient,
    channel: str = "sms",
    token: str = TOKEN,
    timeout_s: float = 2.0,
) -> HttpMessagingAdapter:
    return HttpMessagingAdapter(channel, fake.url, token, http, timeout_s)


async def test_gateway_accepts(gateway: FakeMessagingProvider, http: httpx.AsyncClient) -> None:
    result = await gateway_adapter(gateway, http).send(sms(sender_name="Salon Schön"))

    assert result.provider_id == "msg_000001"
    [message] = gateway.messages
    assert (message.id, message.channel, message.to, message.body, message.key, message.sender) == (
        "msg_000001",
        "sms",
        "+491701234567",
        "Bis morgen, Ihr Salon Schön",
        "delivery-7",
        "Salon Schön",
    )


async def test_gateway_whatsapp(gateway: FakeMessagingProvider, http: httpx.AsyncClient) -> None:
    adapter = gateway_adapter(gateway, http, channel="whatsapp")
    message = OutgoingMessage("whatsapp", "+43 664 1234567", None, "Hallo 👋", "wa-1")

    assert (await adapter.send(message)).provider_id == "msg_000001"
    [received] = gateway.messages
    assert (received.channel, received.to, received.body, received.sender) == (
        "whatsapp",
        "+436641234567",
        "Hallo 👋",
        None,
    )


async def test_gateway_same_key_sends_once(
    gateway: FakeMessagingProvider, http: httpx.AsyncClient
) -> None:
    adapter = gateway_adapter(gateway, http)

    first = await adapter.send(sms(key="delivery-8"))
    second = await adapter.send(sms(key="delivery-8"))
    third = await adapter.send(sms(key="delivery-9"))

    assert first.provider_id == second.provider_id == "msg_000001"
    assert third.provider_id == "msg_000002"
    assert [m.key for m in gateway.messages] == ["delivery-8", "delivery-9"]
    assert gateway.calls == 3


async def test_gateway_503_with_retry_after_is_transient(
    gateway: FakeMessagingProvider, http: httpx.AsyncClient
) -> None:
    gateway.fail_next(1, status=503, retry_after=7)
    adapter = gateway_adapter(gateway, http)

    with pytest.raises(TransientDeliveryError) as caught:
        await adapter.send(sms())

    assert caught.value.retry_after_s == 7.0
    assert str(caught.value) == (
        'sms gateway answered 503 (+49170*****67): {"error":"injected failure"}'
    )
    assert gateway.messages == []
    assert (await adapter.send(sms())).provider_id == "msg_000001"


async def test_gateway_429_without_retry_after(
    gateway: FakeMessagingProvider, http: httpx.AsyncClient
) -> None:
    gateway.fail_next(2, status=429)
    adapter = gateway_adapter(gateway, http)
    for _ in range(2):
        with pytest.raises(TransientDeliveryError) as caught:
            await adapter.send(sms())
        assert caught.value.retry_after_s is None
    assert (await adapter.send(sms())).provider_id == "msg_000001"


async def test_gateway_2xx_without_id_is_transient(
    gateway: FakeMessagingProvider, http: httpx.AsyncClient
) -> None:
    gateway.fail_next(1, status=202)
    with pytest.raises(TransientDeliveryError, match="answered 202 without a message id"):
        await gateway_adapter(gateway, http).send(sms())


async def test_gateway_422_is_permanent(
    gateway: FakeMessagingProvider, http: httpx.AsyncClient
) -> None:
    with pytest.raises(PermanentDeliveryError) as caught:
        await gateway_adapter(gateway, http).send(sms(sender_name="  "))

    assert str(caught.value) == (
        "sms gateway refused +49170*****67: 422 "
        '{"error":"sender must be a non-empty string when given"}'
    )
    assert gateway.messages == []


async def test_gateway_401_is_permanent(
    gateway: FakeMessagingProvider, http: httpx.AsyncClient
) -> None:
    with pytest.raises(PermanentDeliveryError) as caught:
        await gateway_adapter(gateway, http, token="wrong").send(sms())

    assert str(caught.value) == (
        'sms gateway refused +49170*****67: 401 {"error":"invalid or missing bearer token"}'
    )
    assert gateway.messages == []


async def test_gateway_error_text_is_truncated(
    gateway: FakeMessagingProvider, http: httpx.AsyncClient
) -> None:
    gateway.fail_next(1, status=400, text="x" * 2000)
    with pytest.raises(PermanentDeliveryError) as caught:
        await gateway_adapter(gateway, http).send(sms())
    assert str(caught.value) == "sms gateway refused +49170*****67: 400 " + (
        '{"error":"' + "x" * 490
    )


async def test_gateway_slow_is_transient_and_retry_is_deduplicated(
    gateway: FakeMessagingProvider, http: httpx.AsyncClient
) -> None:
    gateway.slow(1.0)
    adapter = gateway_adapter(gateway, http, timeout_s=0.3)
    started = time.monotonic()

    with pytest.raises(TransientDeliveryError, match=r"did not answer within 0\.3 s"):
        await adapter.send(sms())

    assert time.monotonic() - started < 0.8
    # The gateway still handles the request we gave up on ...
    deadline = time.monotonic() + 5
    while not gateway.messages and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    [accepted] = gateway.messages
    # ... so the retry with the same key must not send a second SMS.
    gateway.slow(0)
    assert (await adapter.send(sms())).provider_id == accepted.id
    assert len(gateway.messages) == 1


async def test_gateway_down_is_transient(
    gateway: FakeMessagingProvider, http: httpx.AsyncClient
) -> None:
    adapter = gateway_adapter(gateway, http)
    await adapter.send(sms(key="before"))  # a pooled keep-alive connection exists
    await asyncio.to_thread(gateway.down)
    started = time.monotonic()

    with pytest.raises(TransientDeliveryError, match=r"^sms gateway unreachable"):
        await adapter.send(sms())

    assert time.monotonic() - started < 1.0
    await asyncio.to_thread(gateway.up)
    assert (await adapter.send(sms())).provider_id == "msg_000002"


async def test_gateway_refuses_invalid_recipient_before_sending(
    gateway: FakeMessagingProvider, http: httpx.AsyncClient
) -> None:
    adapter = gateway_adapter(gateway, http)
    with pytest.raises(PermanentDeliveryError, match=r"^invalid sms recipient \*\*\*$"):
        await adapter.send(sms(to="0170"))
    with pytest.raises(PermanentDeliveryError, match="sms adapter got a whatsapp message"):
        await adapter.send(OutgoingMessage("whatsapp", "+491701234567", None, "x", "k"))
    assert gateway.calls == 0


def test_parse_retry_after() -> None:
    now = datetime(2015, 10, 21, 7, 27, 30, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None


# -- registry ------------------------------------------------------------------------------


async def test_registry(http: httpx.AsyncClient) -> None:
    email_only = adapters_from_settings(Settings(), http)
    assert list(email_only) == ["email"]
    assert isinstance(email_only["email"], SmtpEmailAdapter)
    with pytest.raises(ChannelNotConfigured, match="no sms channel is configured"):
        adapter_for(email_only, "sms")
    assert issubclass(ChannelNotConfigured, PermanentDeliveryError)

    both = adapters_from_settings(
        Settings(
            sms_provider_url="https://sms.example.com/",
            sms_provider_token="t1",
            whatsapp_provider_url="https://wa.example.com",
            whatsapp_provider_token="t2",
        ),
        http,
    )
    assert sorted(both) == ["email", "sms", "whatsapp"]
    sms_adapter = adapter_for(both, "sms")
    assert isinstance(sms_adapter, HttpMessagingAdapter)
    assert sms_adapter.channel == "sms"
    assert adapter_for(both, "whatsapp").channel == "whatsapp"

    with pytest.raises(ValueError, match="WHATSAPP_PROVIDER_TOKEN must be set"):
        adapters_from_settings(Settings(whatsapp_provider_url="https://wa.example.com"), http)


async def test_registry_adapters_send(
    smtp: SmtpTestServer, gateway: FakeMessagingProvider, http: httpx.AsyncClient
) -> None:
    settings = smtp_settings(smtp.port, sms_provider_url=gateway.url, sms_provider_token=TOKEN)
    adapters = adapters_from_settings(settings, http)

    await adapter_for(adapters, "email").send(email())
    await adapter_for(adapters, "sms").send(sms())

    assert len(await smtp.wait_for(1)) == 1
    assert [m.to for m in gateway.messages] == ["+491701234567"]


async def test_gateway_same_key_other_body_is_permanent(
    gateway: FakeMessagingProvider, http: httpx.AsyncClient
) -> None:
    adapter = gateway_adapter(gateway, http)
    await adapter.send(sms(key="k-1"))
    other = OutgoingMessage("sms", "0170 1234567", None, "Anderer Text", "k-1")

    with pytest.raises(PermanentDeliveryError, match="Idempotency-Key reused"):
        await adapter.send(other)

    assert [m.body for m in gateway.messages] == ["Bis morgen, Ihr Salon Schön"]


# -- the test doubles themselves (sync use) ------------------------------------------------


def test_fake_gateway_checks_requests() -> None:
    with FakeMessagingProvider(token="t") as fake, httpx.Client(base_url=fake.url) as client:
        auth = {"Authorization": "Bearer t"}
        ok = {"channel": "sms", "to": "+491701234567", "body": "Hallo"}

        no_key = client.post("/v1/messages", json=ok, headers=auth)
        not_json = client.post(
            "/v1/messages", content=b"{", headers={**auth, "Idempotency-Key": "a"}
        )
        extra = client.post(
            "/v1/messages",
            json={**ok, "channel": "fax", "to": "0170", "media": "x"},
            headers={**auth, "Idempotency-Key": "b"},
        )
        accepted = client.post("/v1/messages", json=ok, headers={**auth, "Idempotency-Key": "c"})

        assert (no_key.status_code, no_key.json()) == (
            400,
            {"error": "Idempotency-Key header is required"},
        )
        assert (not_json.status_code, not_json.json()) == (422, {"error": "body is not JSON"})
        assert extra.status_code == 422
        assert extra.json() == {
            "error": "unknown field 'media'; channel must be 'sms' or 'whatsapp'; "
            "to must be an E.164 number such as +491701234567"
        }
        assert (accepted.status_code, accepted.json()) == (
            201,
            {"id": "msg_000001", "status": "queued"},
        )
        assert [m.key for m in fake.messages] == ["c"]
        assert fake.calls == 4
        fake.clear()
        assert (fake.messages, fake.calls) == ([], 0)


def test_smtp_server_sync_use() -> None:
    with SmtpTestServer() as server:
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Message-ID"] = "a@example.com", "b@example.com", "<m1@x>"
        mail.set_content("Grüße")
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.send_message(mail)
            client.send_message(mail)
        assert [m.get_content() for m in server.messages] == ["Grüße\n", "Grüße\n"]
        assert server.count_message_id("m1@x") == 2
        server.clear()
        assert (server.messages, server.envelopes) == ([], [])
