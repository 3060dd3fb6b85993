"""The ops page's last messages (services/booking/ops/messages.py): a company's own deliveries,
with the text the development outbox caught of them, on SQLite and MariaDB.

The outbox is the real one (tools/dev_outbox.py's app, in-process), fed through its gateway API
and with mails built by our SMTP adapter; "down" is a port nothing listens on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from services.booking.ops.i18n import Formatter
from services.booking.ops.messages import SentMessage, recent_messages
from services.notifications.channels.base import OutgoingMessage
from services.notifications.channels.email import SmtpEmailAdapter
from shared.config import Settings
from shared.db.engine import Database
from shared.local_time import zone_of
from shared.models import NotificationDelivery
from tests.cli.test_run import free_ports
from tests.support.factories import create_tenant
from tools.dev_outbox import Outbox, caught_email, create_app

TOKEN = "ops-messages-token"
TEMPLATES = Path(__file__).resolve().parents[2] / "services/booking/templates/ops"
T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def delivery(
    channel: str, masked: str, event: str, status: str, minute: int
) -> NotificationDelivery:
    return NotificationDelivery(
        id=str(uuid.uuid4()),
        event_id=f"evt-{uuid.uuid4()}",
        event_type=event,
        channel=channel,
        recipient_key=uuid.uuid4().hex + uuid.uuid4().hex,
        recipient_masked=masked,
        recipient_kind="customer",
        language="de",
        status=status,
        attempts=1,
        created_at=T0 + timedelta(minutes=minute),
        sent_at=T0 + timedelta(minutes=minute, seconds=2) if status == "sent" else None,
    )


async def store(db: Database, company_id: str, rows: list[NotificationDelivery]) -> list[str]:
    async with db.transaction(company_id) as session:
        session.add_all(rows)
    return [row.id for row in rows]


def mail(outbox: Outbox, delivery_id: str, to: str, subject: str, body: str) -> None:
    """What our SMTP adapter would put on the wire, as the outbox's SMTP server keeps it."""
    adapter = SmtpEmailAdapter(Settings(_env_file=None))
    built = adapter.build(OutgoingMessage("email", to, subject, body, delivery_id), to)
    outbox.add(caught_email(outbox, built.as_bytes(), [to]))


async def test_a_company_sees_only_its_own_messages_with_their_text(db: Database) -> None:
    a, b = await create_tenant(db), await create_tenant(db)
    a_mail, a_sms, a_skipped, a_failed = await store(
        db,
        a.company_id,
        [
            delivery("email", "e***@example.com", "booking_confirmed", "sent", 1),
            delivery("sms", "+49*********67", "booking_confirmed", "sent", 2),
            delivery("sms", "-", "booking_reminder_24h", "skipped", 3),
            delivery("email", "e***@example.com", "booking_cancelled", "failed", 4),
        ],
    )
    [b_mail] = await store(
        db, b.company_id, [delivery("email", "m***@other.test", "booking_confirmed", "sent", 5)]
    )

    outbox = Outbox(TOKEN)
    app = create_app(outbox)
    asked: list[str] = []

    async def record(request: httpx.Request) -> None:
        asked.append(str(request.url))

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://outbox.test",
        event_hooks={"request": [record]},
    ) as http:
        mail(outbox, a_mail, "erika@example.com", "Terminbestätigung: Schnitt", "Hallo <Erika>")
        sms = await http.post(
            "/gateway/sms/v1/messages",
            json={"channel": "sms", "to": "+491701234567", "body": "Termin bestätigt"},
            headers={"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": a_sms},
        )
        assert sms.status_code == 201, sms.text
        mail(outbox, b_mail, "max@other.test", "Geheim: B", "Nur für B")
        asked.clear()
        caught = {m.delivery_id: m.received_at for m in outbox.messages}

        async with db.transaction(a.company_id) as session:
            found = await recent_messages(session, a.company_id, "http://outbox.test", http=http)
        async with db.transaction(a.company_id) as session:
            newest = await recent_messages(
                session, a.company_id, "http://outbox.test", limit=1, http=http
            )

    assert found == [
        SentMessage(
            "email",
            "e***@example.com",
            "booking_cancelled",
            "failed",
            None,
            None,
            T0 + timedelta(minutes=4),
        ),
        SentMessage(
            "sms",
            "+49*********67",
            "booking_confirmed",
            "sent",
            None,
            "Termin bestätigt",
            caught[a_sms],
        ),
        SentMessage(
            "email",
            "e***@example.com",
            "booking_confirmed",
            "sent",
            "Terminbestätigung: Schnitt",
            "Hallo <Erika>",
            caught[a_mail],
        ),
    ]
    assert len(asked) == 2, "one question per call"
    query = httpx.URL(asked[0]).params
    assert sorted(query["ids"].split(",")) == sorted([a_mail, a_sms, a_failed])
    assert a_skipped not in asked[0], "a skipped delivery was never sent: not asked for"
    assert b_mail not in asked[0] and b_mail not in asked[1]
    assert httpx.URL(asked[1]).params["ids"] == a_failed
    assert [m.event_type for m in newest] == ["booking_cancelled"]


async def test_without_an_outbox_the_deliveries_are_listed_without_text(db: Database) -> None:
    a = await create_tenant(db)
    await store(
        db, a.company_id, [delivery("sms", "+49*********11", "booking_confirmed", "sent", 7)]
    )
    expected = [
        SentMessage(
            "sms",
            "+49*********11",
            "booking_confirmed",
            "sent",
            None,
            None,
            T0 + timedelta(minutes=7, seconds=2),
        )
    ]
    [nothing_listens] = free_ports(1)
    async with db.transaction(a.company_id) as session:
        down = await recent_messages(session, a.company_id, f"http://127.0.0.1:{nothing_listens}")
        none = await recent_messages(session, a.company_id, None)
    assert down == expected
    assert none == expected

    wrong_place = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(Outbox(TOKEN))), base_url="http://x.test"
    )
    async with wrong_place, db.transaction(a.company_id) as session:
        # Not an outbox at that address: 404, still no exception.
        missing = await recent_messages(
            session, a.company_id, "http://x.test/nothing-here", http=wrong_place
        )
    assert missing == expected


def test_the_partial_renders_the_messages_escaped() -> None:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined
    )
    messages = [
        SentMessage(
            "email",
            "e***@example.com",
            "booking_confirmed",
            "sent",
            "Bestätigt <b>",
            "Hallo <i>",
            T0,
        ),
        SentMessage("sms", "+49*********67", "booking_cancelled", "failed", None, None, T0),
    ]
    fmt = Formatter("de", zone_of("Europe/Berlin"))
    html = env.get_template("_messages.html").render(
        messages=messages, outbox_url="http://127.0.0.1:8025/", t=fmt.t, fmt=fmt
    )
    assert "Letzte Nachrichten" in html and "Text nicht verfügbar" in html
    assert "Bestätigt &lt;b&gt;" in html and "Hallo &lt;i&gt;" in html and "<i>" not in html
    assert "e***@example.com" in html and "+49*********67" in html
    assert "booking confirmed" in html and "Mo, 07.12.2026, 10:00" in html  # Berlin time
    assert '<a href="http://127.0.0.1:8025/">alle Nachrichten</a>' in html
    english = Formatter("en", zone_of("Europe/Berlin"))
    empty = env.get_template("_messages.html").render(
        messages=[], outbox_url=None, t=english.t, fmt=english
    )
    assert "No messages yet." in empty and "all messages" not in empty
