"""A customer whose personal data sits in every place we store data, and a search of every
table's every text and JSON column for it (the DSGVO tests)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import httpx
import sqlalchemy as sa

from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.db.types import utcnow
from shared.models import (
    ApiCallLog,
    Appointment,
    Base,
    BookingFailure,
    Call,
    Customer,
    NotificationDelivery,
    OutboxEvent,
    WebhookEvent,
)
from tests.booking.agent_support import call_function, enable_retell
from tests.booking.test_booking_api import at
from tests.support.factories import Salon, create_salon, next_weekday


@dataclass(frozen=True)
class Person:
    name: str
    phone: str  # E.164
    national: str  # as a German caller says it
    email: str

    @property
    def forms(self) -> list[str]:
        """Every written form the erasure must leave nowhere (compared in lower case)."""
        digits = self.phone.removeprefix("+")
        last_name = self.name.split()[-1]
        return [
            self.phone,
            digits,
            self.national.replace(" ", ""),
            self.national,
            quote(self.phone, safe=""),
            self.email,
            quote(self.email, safe=""),
            self.name,
            last_name,
        ]


ALICE = Person("Theodora Zwiebelbrecht", "+4917612345678", "0176 12345678", "theo.zw@example.de")
OTHER = Person("Kunigunde Quastenflosser", "+4915798765432", "0157 98765432", "kq@example.org")


@dataclass
class Seeded:
    salon: Salon
    person: Person
    customer_id: str
    appointment_ids: list[str]
    call_id: str


async def seed_customer(booking: httpx.AsyncClient, db: Database, who: Person) -> Seeded:
    """Book via REST (with an Idempotency-Key) and via the agent, leave a callback, cancel with
    a reason, and add the rows other services write (call with transcript, webhook events, an
    API call log, a notification delivery, an outbox job, a booking failure)."""
    salon = await create_salon(db)
    await enable_retell(db, salon)
    day = next_weekday(2)
    rest = await booking.post(
        "/v1/appointments",
        headers={**salon.headers, "Idempotency-Key": f"idem-{uuid.uuid4().hex[:8]}"},
        json={
            "service_id": salon.service_id,
            "staff_id": salon.staff_ids[0],
            "start": at(day, 10),
            "customer": {"name": who.name, "phone": who.national, "email": who.email},
            "notes": f"Bitte {who.name} unter {who.national} erinnern",
        },
    )
    assert rest.status_code == 201, rest.text
    retell_call_id = f"call_{uuid.uuid4().hex[:12]}"
    agent = await call_function(
        booking,
        salon,
        "book_appointment",
        {
            "service": "Herrenhaarschnitt",
            "date": day.isoformat(),
            "time": "14:00",
            "customer_name": who.name,
            "customer_email": who.email,
            "notes": f"Rückruf an {who.phone}",
        },
        call_id=retell_call_id,
        caller=who.phone,
    )
    assert agent.json()["status"] == "booked", agent.text
    cancel = await booking.post(
        f"/v1/appointments/{agent.json()['appointment_id']}/cancel",
        headers=salon.headers,
        json={"reason": f"{who.name} ist krank"},
    )
    assert cancel.status_code == 200, cancel.text
    callback = await booking.post(
        "/v1/callbacks",
        headers=salon.headers,
        json={
            "phone_number": who.national,
            "reason": f"Frage von {who.name} ({who.email})",
            "customer_name": who.name,
            "preferred_time": "morgen früh",
        },
    )
    assert callback.status_code == 201, callback.text
    ids = [rest.json()["id"], agent.json()["appointment_id"]]
    customer_id = rest.json()["customer_id"]
    await _add_foreign_rows(db, salon, who, customer_id, ids[0], retell_call_id)
    return Seeded(salon, who, customer_id, ids, retell_call_id)


async def _add_foreign_rows(
    db: Database, salon: Salon, who: Person, customer_id: str, appointment_id: str, call_id: str
) -> None:
    now = utcnow()
    company_id = salon.tenant.company_id
    async with db.transaction(company_id) as session:
        session.add_all(
            [
                Call(
                    retell_call_id=call_id,
                    customer_id=customer_id,
                    from_number=who.phone,
                    to_number=salon.phone_number,
                    status="ended",
                    started_at=now - timedelta(minutes=5),
                    transcript=f"Agent: Ihr Name? User: {who.name}, Nummer {who.national}.",
                    analysis={"call_summary": f"{who.name} bucht", "caller": who.email},
                ),
                WebhookEvent(
                    company_id=company_id,
                    source="calcom",
                    event_id=f"calcom:{uuid.uuid4().hex}",
                    event_type="BOOKING_CREATED",
                    status="processed",
                    payload={
                        "triggerEvent": "BOOKING_CREATED",
                        "payload": {
                            "attendees": [{"name": who.name, "email": who.email}],
                            "responses": {"phone": {"value": who.phone}},
                        },
                    },
                ),
                WebhookEvent(
                    company_id=company_id,
                    source="retell",
                    event_id=f"call_analyzed:{call_id}",
                    event_type="call_analyzed",
                    status="processed",
                    # Only the call id and a spaced number: found through their call.
                    payload={
                        "event": "call_analyzed",
                        "call": {
                            "call_id": call_id,
                            "transcript": f"Meine Nummer ist {who.national}",
                        },
                    },
                ),
                ApiCallLog(
                    company_id=company_id,
                    service="calcom",
                    method="GET",
                    endpoint=f"/v2/bookings?attendeeEmail={quote(who.email, safe='')}",
                    request_payload={"q": quote(who.phone, safe="")},
                    response_status=200,
                    response_body={"data": [{"attendee": who.name}]},
                    created_at=now,
                ),
                NotificationDelivery(
                    event_id=f"evt-{uuid.uuid4().hex[:8]}",
                    event_type="booking_confirmed",
                    channel="email",
                    recipient_key=uuid.uuid4().hex,
                    recipient_masked=who.email[0] + "***@" + who.email.split("@")[1],
                    recipient_kind="customer",
                    language="de",
                    appointment_id=appointment_id,
                    status="failed",
                    last_error=f"550 <{who.email}>: Recipient address rejected",
                ),
                OutboxEvent(
                    company_id=company_id,
                    queue="arq:queue:notify",
                    job_name="notify",
                    payload={"event_type": "callback_requested", "phone": who.phone},
                    status="done",
                    available_at=now,
                ),
                BookingFailure(
                    source="api",
                    error_code="database_unavailable",
                    error_message=f"booking for {who.email} failed",
                    http_status=503,
                    created_at=now,
                ),
            ]
        )


def _leaves(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [k for k in value if isinstance(k, str)] + [
            leaf for v in value.values() for leaf in _leaves(v)
        ]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return []


async def find(db: Database, who: Person) -> dict[str, set[str]]:
    """Every table.column of the whole database (all companies) holding any form of `who`."""
    needles = [form.lower() for form in who.forms]
    found: dict[str, set[str]] = {}
    async with db.transaction(SYSTEM, write=False) as session:
        for table in Base.metadata.sorted_tables:
            columns = [
                c for c in table.columns if isinstance(c.type, sa.String | sa.Text | sa.JSON)
            ]
            if not columns:
                continue
            for row in (await session.execute(sa.select(*columns))).all():
                for column, value in zip(columns, row, strict=True):
                    text = " ".join(_leaves(value)).lower()
                    hits = {n for n in needles if n in text}
                    if hits:
                        found.setdefault(f"{table.name}.{column.name}", set()).update(hits)
    return found


async def company_rows(db: Database, company_id: str) -> dict[str, list[str]]:
    """Every row of every table that belongs to `company_id`, as comparable text."""
    rows: dict[str, list[str]] = {}
    async with db.transaction(SYSTEM, write=False) as session:
        for table in Base.metadata.sorted_tables:
            key = table.c.get("company_id")
            if key is None:
                continue
            result = await session.execute(sa.select(table).where(key == company_id))
            rows[table.name] = sorted(
                json.dumps(dict(r._mapping), default=str, sort_keys=True) for r in result
            )
    return rows


async def appointment_count(db: Database, company_id: str) -> int:
    async with db.transaction(company_id, write=False) as session:
        return int(await session.scalar(sa.select(sa.func.count(Appointment.id))) or 0)


async def customer(db: Database, company_id: str, customer_id: str) -> Customer:
    async with db.transaction(company_id, write=False) as session:
        row = await session.get(Customer, customer_id)
        assert row is not None
        return row
