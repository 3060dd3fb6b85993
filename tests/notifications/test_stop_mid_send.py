"""A worker's stop never separates a send from its record (ADR 0020), on both backends.

The notify job is cancelled as a worker's drain cancels it: right after the relay took the
message in (its "250" still on the way), and before the send began. The first is recorded
`sent` and never sent again; the second gives its claim back and sends nothing. A send whose
job the drain gave up on still finishes before the worker's shutdown closes the database.
What a killed process (SIGKILL) leaves, a `sending` row whose lease ran out, goes out again
under the same Message-ID and Idempotency-Key. A database that refuses the record for a
moment does not lose the outcome. The SIGTERM burst with real worker processes is
tests/faults/test_sigterm_burst.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from sqlalchemy.engine import make_url

from services.notifications import worker
from services.notifications.channels.email import message_id_for
from services.notifications.channels.registry import adapters_from_settings
from services.notifications.deliveries import delivery
from services.notifications.deliveries.recipients import Recipient
from services.notifications.jobs import notify
from services.notifications.templates.rendering import RenderedMessage
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.db.types import utcnow
from shared.models import NotificationDelivery, OutboxEvent
from tests.conftest import Services
from tests.notifications.conftest import notify_rows
from tests.notifications.slow_smtp import SlowSmtpServer
from tests.notifications.test_notify import book, customer_email, deliveries, to
from tests.support.factories import Salon, create_salon
from tests.support.fake_messaging import FakeMessagingProvider
from tests.support.smtp_server import SmtpTestServer

REPLY_DELAY_S = 0.5


@pytest.fixture
async def slow_smtp() -> AsyncIterator[SlowSmtpServer]:
    async with SlowSmtpServer(reply_delay_s=REPLY_DELAY_S) as server:
        yield server


@pytest.fixture
async def slow_ctx(
    ctx: dict[str, Any], channel_settings: Settings, slow_smtp: SlowSmtpServer
) -> AsyncIterator[dict[str, Any]]:
    """The notify job's context with e-mail through the slow relay (SMS: the fake gateway)."""
    settings = channel_settings.model_copy(update={"smtp_port": slow_smtp.port})
    async with httpx.AsyncClient() as http:
        yield {**ctx, "settings": settings, "adapters": adapters_from_settings(settings, http)}


@pytest.fixture
async def salon(db: Database) -> Salon:
    return await create_salon(db)


def counted(channel: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "notifications_total", {"channel": channel, "outcome": outcome}
    )
    return value or 0.0


async def outbox_status(db: Database, event_id: str) -> str:
    async with db.transaction(SYSTEM, write=False) as session:
        row = await session.get(OutboxEvent, event_id)
        assert row is not None
        return row.status


async def rows_of_event(db: Database, event_id: str) -> list[NotificationDelivery]:
    async with db.transaction(SYSTEM, write=False) as session:
        rows = await session.scalars(
            sa.select(NotificationDelivery)
            .where(NotificationDelivery.event_id == event_id)
            .order_by(NotificationDelivery.attempts)
        )
        return list(rows)


async def test_a_send_cancelled_after_the_relay_accepted_it_is_recorded_sent_and_not_sent_again(
    services: Services,
    salon: Salon,
    db: Database,
    slow_ctx: dict[str, Any],
    slow_smtp: SlowSmtpServer,
    sms_gateway: FakeMessagingProvider,
) -> None:
    email = customer_email()
    appointment = await book(services, salon, email)
    [event] = await notify_rows(db, appointment["id"])

    job = asyncio.create_task(notify(slow_ctx, event.id))
    await slow_smtp.wait_for(1)  # the relay has the e-mail; its "250" is REPLY_DELAY_S away
    assert slow_smtp.in_flight == 1 and not job.done()
    job.cancel()  # the worker's stop, as ARQ (or the drain's deadline) cancels a running job
    with pytest.raises(asyncio.CancelledError):
        await job

    # The send was let finish and its outcome recorded before the job gave up.
    assert slow_smtp.replied == 1
    [message] = to(slow_smtp.messages, email)
    [row] = await deliveries(db, appointment["id"])
    assert (row.channel, row.status, row.attempts, row.lease_until) == ("email", "sent", 1, None)
    assert row.sent_at is not None
    assert row.provider_message_id == message["Message-ID"] == message_id_for(row.id)
    # The stop came before the SMS was claimed: nothing of it exists, and the job runs again.
    assert sms_gateway.calls == 0
    assert await outbox_status(db, event.id) == "pending"

    # ARQ runs the cancelled job again: the e-mail is settled, only the SMS goes out.
    assert await notify({**slow_ctx, "job_try": 2}, event.id) == "done,sent"
    assert slow_smtp.count_message_id(message["Message-ID"]) == 1
    assert len(slow_smtp.messages) == 1
    rows = await deliveries(db, appointment["id"])
    assert [(r.channel, r.status, r.attempts) for r in rows] == [
        ("email", "sent", 1),
        ("sms", "sent", 1),
    ]
    assert [m.key for m in sms_gateway.messages] == [rows[1].id]
    assert await outbox_status(db, event.id) == "done"


async def test_the_worker_shutdown_lets_a_send_whose_job_was_given_up_finish_first(
    services: Services,
    salon: Salon,
    ctx: dict[str, Any],
    db: Database,
    channel_settings: Settings,
    slow_smtp: SlowSmtpServer,
) -> None:
    """The drain cancelled the job and stopped waiting for it (its settling time is shorter
    than a slow relay's answer): the worker's shutdown still waits for the send and its
    record before the database and the process go."""
    settings = channel_settings.model_copy(update={"smtp_port": slow_smtp.port})
    http = httpx.AsyncClient()
    worker_ctx = {
        **ctx,
        "db": Database(settings=settings),  # the worker's own engine: its shutdown disposes it
        "settings": settings,
        "http": http,
        "adapters": adapters_from_settings(settings, http),
    }
    email = customer_email()
    appointment = await book(services, salon, email)
    [event] = await notify_rows(db, appointment["id"])
    job = asyncio.create_task(notify(worker_ctx, event.id))
    await slow_smtp.wait_for(1)
    job.cancel()  # and nobody waits for it any more

    await worker.shutdown(worker_ctx)  # what shared.jobs.worker_main's close() runs next

    [row] = await deliveries(db, appointment["id"])
    assert (row.channel, row.status) == ("email", "sent")
    assert slow_smtp.replied == 1
    assert job.done() and job.cancelled()


async def test_a_stop_before_the_send_gives_the_claim_back_and_sends_nothing(
    salon: Salon, db: Database, slow_ctx: dict[str, Any], slow_smtp: SlowSmtpServer
) -> None:
    email = customer_email()
    notice = delivery.Notice(
        company_id=salon.tenant.company_id,
        event_id=f"test:{email}",
        event_type="booking_confirmed",
        channel="email",
        recipient=Recipient(kind="customer", address=email, language="de"),
        appointment_id=None,
        callback_id=None,
    )
    message = RenderedMessage(subject="Ihr Termin", body="Bis bald.")
    adapter = slow_ctx["adapters"]["email"]

    async def stopped_while_claiming() -> None:
        job = asyncio.create_task(delivery.deliver(db, adapter, notice, message, utcnow()))
        await asyncio.sleep(0)  # the job is now waiting for its claim to commit
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job

    # A first claim (it created the row): the row is gone again, nothing was sent.
    await stopped_while_claiming()
    assert await rows_of_event(db, notice.event_id) == []
    assert slow_smtp.messages == []

    # A claim that took a `retrying` row over: the row is as it was (attempt 1 not counted
    # twice, no lease to wait out).
    slow_smtp.defer(1)
    assert await delivery.deliver(db, adapter, notice, message, utcnow()) == "retrying"
    [before] = await rows_of_event(db, notice.event_id)
    await stopped_while_claiming()
    [after] = await rows_of_event(db, notice.event_id)
    assert (after.status, after.attempts, after.lease_until) == ("retrying", 1, None)
    assert after.last_error == before.last_error and "451" in (after.last_error or "")
    assert slow_smtp.messages == []

    # The next try sends it, once.
    assert await delivery.deliver(db, adapter, notice, message, utcnow()) == "sent"
    [row] = await rows_of_event(db, notice.event_id)
    assert (row.status, row.attempts) == ("sent", 2)
    [mail] = slow_smtp.messages
    assert mail["Message-ID"] == message_id_for(row.id)


async def test_a_send_cut_off_by_a_kill_goes_out_again_under_the_same_message_id_and_key(
    services: Services,
    salon: Salon,
    db: Database,
    ctx: dict[str, Any],
    smtp: SmtpTestServer,
    sms_gateway: FakeMessagingProvider,
) -> None:
    """The one window left (ADR 0020): a process killed between the relay's acceptance and the
    record. The retry cannot know whether it went out; it sends again, recognisably the same."""
    email = customer_email()
    appointment = await book(services, salon, email)
    [event] = await notify_rows(db, appointment["id"])
    assert await notify(ctx, event.id) == "sent"
    [email_row, sms_row] = await deliveries(db, appointment["id"])
    [sms] = sms_gateway.messages
    # What a SIGKILL right after both sends leaves: rows `sending`, their leases run out.
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            sa.update(NotificationDelivery)
            .where(NotificationDelivery.id.in_([email_row.id, sms_row.id]))
            .values(
                status="sending",
                sent_at=None,
                provider_message_id=None,
                lease_until=utcnow() - timedelta(seconds=1),
            )
        )
        await session.execute(
            sa.update(OutboxEvent).where(OutboxEvent.id == event.id).values(status="pending")
        )
    resends = counted("email", "resend"), counted("sms", "resend")

    assert await notify({**ctx, "job_try": 2}, event.id) == "sent"

    # E-mail: the same message again (same Message-ID): a reader's client shows one.
    first, again = to(smtp.messages, email)
    assert first["Message-ID"] == again["Message-ID"] == message_id_for(email_row.id)
    # SMS: the same Idempotency-Key, and the gateway sent nothing the second time.
    assert sms_gateway.calls == 2
    assert sms_gateway.messages == [sms] and sms.key == sms_row.id
    rows = await deliveries(db, appointment["id"])
    assert [(r.channel, r.status, r.attempts) for r in rows] == [
        ("email", "sent", 2),
        ("sms", "sent", 2),
    ]
    assert rows[1].provider_message_id == sms.id
    assert (counted("email", "resend"), counted("sms", "resend")) == (
        resends[0] + 1,
        resends[1] + 1,
    )


async def test_an_outcome_the_database_refuses_for_a_moment_is_recorded_after_all(
    salon: Salon, db: Database, settings: Settings, backend: str
) -> None:
    """SQLite locked by another writer past the busy timeout: the record of a sent message is
    tried again until it lands (on MariaDB a lock wait takes innodb_lock_wait_timeout, 50 s;
    the code path is the same)."""
    if backend != "sqlite":
        pytest.skip("needs a lock the database gives up on quickly (SQLite's busy timeout)")
    notice = delivery.Notice(
        company_id=salon.tenant.company_id,
        event_id=f"test:locked:{customer_email()}",
        event_type="booking_confirmed",
        channel="email",
        recipient=Recipient(kind="customer", address=customer_email(), language="de"),
        appointment_id=None,
        callback_id=None,
    )
    claimed = await delivery.claim(db, notice, utcnow())
    assert claimed is not None
    impatient = Database(settings=settings.model_copy(update={"sqlite_busy_timeout_ms": 50}))
    path = make_url(settings.database_url).database
    assert path
    blocker = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
        unlock = threading.Timer(0.6, lambda: blocker.execute("COMMIT"))
        unlock.start()
        started = time.monotonic()
        await delivery.record_surely(impatient, notice, claimed, "sent", provider_id="<x@y>")
        waited = time.monotonic() - started
        unlock.join()
    finally:
        blocker.close()
        await impatient.dispose()
    assert waited >= 0.6
    [row] = await rows_of_event(db, notice.event_id)
    assert (row.status, row.provider_message_id, row.lease_until) == ("sent", "<x@y>", None)
