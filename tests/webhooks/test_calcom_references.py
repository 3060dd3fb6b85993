"""Appointments imported from Cal.com get a booking reference like any other, and an import
never overwrites the stored name or e-mail of an existing customer (issue 13)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from shared.db.engine import Database
from shared.models import Customer
from tests.webhooks.conftest import (
    appointments,
    contract,
    create_calcom_salon,
    deliver,
    iso,
    new_uid,
    with_uid,
)

FORMAT = re.compile(r"^[ABCDEFGHJKMNPQRSTUVWXYZ23456789]{6}$")
T0 = datetime(2023, 5, 25, 9, 30, tzinfo=UTC)


def created(uid: str, start: datetime, **attendee: Any) -> dict[str, Any]:
    body = with_uid(
        contract("webhook-BOOKING_CREATED.example.json"),
        uid,
        startTime=iso(start),
        endTime=iso(start + timedelta(minutes=60)),
    )
    body["payload"]["attendees"][0].update(attendee)
    return body


async def test_imported_bookings_get_references(db: Database, ctx: dict[str, Any]) -> None:
    cs = await create_calcom_salon(db, event_type_id=7)
    for hours in (0, 2):
        event = await deliver(ctx, cs.company_id, created(new_uid(), T0 + timedelta(hours=hours)))
        assert event.status == "processed", event.error_message
    mirrors = await appointments(db, cs.company_id)
    assert [m.source for m in mirrors] == ["calcom", "calcom"]
    assert all(FORMAT.match(m.reference) for m in mirrors)
    assert mirrors[0].reference != mirrors[1].reference


async def test_an_import_keeps_an_existing_customers_name_and_email(
    db: Database, ctx: dict[str, Any]
) -> None:
    cs = await create_calcom_salon(db, event_type_id=7)
    phone = "+4915112345678"
    async with db.transaction(cs.company_id) as session:
        session.add(Customer(name="Erika Muster", phone=phone, email="erika@example.com"))
    body = created(
        new_uid(), T0, phoneNumber="0151 12345678", name="Someone Else", email="x@example.com"
    )
    event = await deliver(ctx, cs.company_id, body)
    assert event.status == "processed", event.error_message
    [mirror] = await appointments(db, cs.company_id)
    async with db.transaction(cs.company_id, write=False) as session:
        customers = (await session.execute(sa.select(Customer))).scalars().all()
    assert [(c.id, c.name, c.email) for c in customers] == [
        (mirror.customer_id, "Erika Muster", "erika@example.com")
    ]
