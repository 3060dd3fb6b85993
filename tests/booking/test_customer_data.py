"""DSGVO: export and erasure of one customer's data (issue 13, item 9; docs/adr/0015).

The customer's phone (every written form), e-mail and name are seeded into every place the
system stores data; after the erasure a search of every text and JSON column of every table
finds none of them, while appointments stay countable and another company keeps its data.
"""

from __future__ import annotations

import httpx
import redis.asyncio as aioredis

from services.booking.admin.customers.personal_data import identity
from shared.db.engine import Database
from tests.booking.customer_data_support import (
    ALICE,
    OTHER,
    Seeded,
    appointment_count,
    company_rows,
    customer,
    find,
    seed_customer,
)
from tests.conftest import Services

ADMIN = "/v1/admin/customers"


async def _export(booking: httpx.AsyncClient, seeded: Seeded) -> httpx.Response:
    return await booking.get(f"{ADMIN}/{seeded.customer_id}/export", headers=seeded.salon.headers)


async def _erase(booking: httpx.AsyncClient, seeded: Seeded) -> httpx.Response:
    return await booking.post(f"{ADMIN}/{seeded.customer_id}/erase", headers=seeded.salon.headers)


async def test_erasure_leaves_no_trace_in_any_table_and_keeps_bookings_countable(
    booking: httpx.AsyncClient, db: Database, services: Services
) -> None:
    alice = await seed_customer(booking, db, ALICE)
    other = await seed_customer(booking, db, OTHER)
    company = alice.salon.tenant.company_id
    redis: aioredis.Redis = services.apps["booking"].state.redis
    bucket = f"rl:num:{company}:{ALICE.phone}"
    await redis.set(bucket, "1", ex=60)
    before = await find(db, ALICE)
    # Seeded everywhere: the search itself can see each place.
    for place in (
        "customers.name",
        "customers.phone",
        "customers.email",
        "appointments.notes",
        "calls.transcript",
        "calls.from_number",
        "calls.analysis",
        "callback_requests.phone_number",
        "callback_requests.customer_name",
        "callback_requests.reason",
        "webhook_events.payload",
        "api_call_logs.endpoint",
        "api_call_logs.request_payload",
        "api_call_logs.response_body",
        "notification_deliveries.last_error",
        "outbox_events.payload",
        "booking_failures.error_message",
        "appointment_modifications.reason",
    ):
        assert place in before, (place, sorted(before))
    appointments = await appointment_count(db, company)
    assert appointments == 2

    erased = await _erase(booking, alice)

    assert erased.status_code == 200, erased.text
    summary = erased.json()
    assert summary["customer_id"] == alice.customer_id
    assert summary["already_erased"] is False
    rows = summary["rows"]
    assert rows["customers"] == 1
    assert rows["appointments"] == 2  # notes and the cancellation reason
    assert rows["calls"] == 1
    assert rows["callback_requests"] == 1
    assert rows["webhook_events"] == 2
    assert rows["api_call_logs"] == 1
    assert rows["notification_deliveries"] == 1
    assert rows["appointment_modifications"] == 1
    assert rows["outbox_events"] >= 1
    assert rows["booking_failures"] == 1
    assert await find(db, ALICE) == {}
    assert await appointment_count(db, company) == appointments
    row = await customer(db, company, alice.customer_id)
    assert row.name == "erased"
    assert row.email is None and row.notes is None and row.erased_at is not None
    assert row.phone is not None and not any(c.isdigit() for c in row.phone)
    assert await redis.exists(bucket) == 0
    # The other company's customer is untouched.
    still = await find(db, OTHER)
    for place in (
        "customers.name",
        "customers.phone",
        "calls.transcript",
        "webhook_events.payload",
    ):
        assert place in still, (place, sorted(still))
    assert (await customer(db, other.salon.tenant.company_id, other.customer_id)).name == OTHER.name


async def test_erasing_twice_answers_200_again_and_changes_nothing_more(
    booking: httpx.AsyncClient, db: Database
) -> None:
    alice = await seed_customer(booking, db, ALICE)
    first = await _erase(booking, alice)
    assert first.status_code == 200, first.text
    snapshot = await company_rows(db, alice.salon.tenant.company_id)
    second = await _erase(booking, alice)
    assert second.status_code == 200, second.text
    assert second.json()["already_erased"] is True
    assert second.json()["erased_at"] == first.json()["erased_at"]
    assert second.json()["rows"] == {}
    assert await company_rows(db, alice.salon.tenant.company_id) == snapshot


async def test_export_holds_everything_before_and_nothing_after_the_erasure(
    booking: httpx.AsyncClient, db: Database
) -> None:
    alice = await seed_customer(booking, db, ALICE)
    exported = await _export(booking, alice)
    assert exported.status_code == 200, exported.text
    body = exported.json()
    assert body["customer"]["name"] == ALICE.name
    assert body["customer"]["phone"] == ALICE.phone
    assert body["customer"]["email"] == ALICE.email
    assert {a["id"] for a in body["appointments"]} == set(alice.appointment_ids)
    booked = next(a for a in body["appointments"] if a["id"] == alice.appointment_ids[0])
    assert booked["service"]["name"] == "Herrenhaarschnitt"
    assert booked["staff"]["name"] == "Anna"
    assert booked["start"].endswith(("+01:00", "+02:00"))  # Berlin, not UTC
    assert booked["start"][11:16] == "10:00"
    assert booked["notes"] == f"Bitte {ALICE.name} unter {ALICE.national} erinnern"
    assert [c["retell_call_id"] for c in body["calls"]] == [alice.call_id]
    assert ALICE.name in body["calls"][0]["transcript"]
    assert [c["customer_name"] for c in body["callbacks"]] == [ALICE.name]
    assert [d["status"] for d in body["notification_deliveries"]] == ["failed"]
    assert [m["modification_type"] for m in body["modifications"]] == ["cancel"]
    assert body["modifications"][0]["reason"] == f"{ALICE.name} ist krank"
    assert {e["event_type"] for e in body["webhook_events"]} == {"BOOKING_CREATED", "call_analyzed"}
    assert len(body["api_calls"]) == 1
    text = exported.text.lower()
    for form in (ALICE.phone, ALICE.email, ALICE.name):
        assert form.lower() in text

    assert (await _erase(booking, alice)).status_code == 200
    after = await _export(booking, alice)
    assert after.status_code == 200, after.text
    text = after.text.lower()
    assert [f for f in ALICE.forms if f.lower() in text] == []
    assert after.json()["customer"]["name"] == "erased"
    assert len(after.json()["appointments"]) == 2


async def test_another_company_gets_404_and_nothing_changes(
    booking: httpx.AsyncClient, db: Database
) -> None:
    alice = await seed_customer(booking, db, ALICE)
    other = await seed_customer(booking, db, OTHER)
    company = alice.salon.tenant.company_id
    before = await company_rows(db, company)
    for method, action in (("POST", "erase"), ("GET", "export")):
        response = await booking.request(
            method, f"{ADMIN}/{alice.customer_id}/{action}", headers=other.salon.headers
        )
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "not_found"
    unknown = await booking.post(f"{ADMIN}/no-such-id/erase", headers=alice.salon.headers)
    assert unknown.status_code == 404
    assert await company_rows(db, company) == before
    assert (await customer(db, company, alice.customer_id)).name == ALICE.name


async def test_export_and_erase_need_the_admin_scope(
    booking: httpx.AsyncClient, db: Database
) -> None:
    from tests.support.factories import create_tenant

    tenant = await create_tenant(db, scopes=["agent"])
    response = await booking.post(f"{ADMIN}/x/erase", headers=tenant.headers)
    assert response.status_code == 403
    assert (await booking.get(f"{ADMIN}/x/export")).status_code == 401


def test_identity_finds_every_form_of_a_number_and_address() -> None:
    who = identity(ALICE.phone, ALICE.email, ALICE.name)
    for text in (
        "+4917612345678",
        "0176 12345678",
        "0176-123 456 78",
        "?phone=%2B4917612345678",
        "004917612345678",
        "Theo.ZW@example.de",
        "mail=theo.zw%40example.de",
        "THEODORA ZWIEBELBRECHT",
        '{"name": "Theodora Zwiebelbrecht"}',
    ):
        assert who.mentions(text), text
    for text in ("+4917612345679", "theo@example.de", "Theodora", "call_abc"):
        assert not who.mentions(text), text
    assert identity("erased-abcdefghijklm", None, "erased").empty
