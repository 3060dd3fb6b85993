"""Operator-readable appointments and callbacks (issue 16, item 5): names beside the ids, the
phone number masked unless the key has the admin scope, the operator scope reads, and every
list pages by keyset cursor (`{"items", "next_cursor"}`)."""

from __future__ import annotations

import base64
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.models import Customer
from shared.security.api_keys import issue_key
from tests.booking.test_statement_count import _work, counted
from tests.conftest import Services
from tests.support.factories import Salon, create_salon, next_weekday, salon_appointment

BERLIN = ZoneInfo("Europe/Berlin")
PHONE = "+491701234567"
MASKED = "+49170*****67"


def at(day: date, hh: int, mm: int = 0) -> str:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=BERLIN).isoformat()


async def key(db: Database, salon: Salon, *scopes: str) -> dict[str, str]:
    async with db.transaction(SYSTEM) as session:
        issued = issue_key(
            session, company_id=salon.tenant.company_id, name="k", scopes=list(scopes)
        )
    return {"Authorization": f"Bearer {issued.plaintext}"}


async def book(booking: httpx.AsyncClient, salon: Salon, start: str) -> dict:
    payload = {
        "service_id": salon.service_id,
        "staff_id": salon.staff_ids[0],
        "start": start,
        "customer": {"name": "Max Mustermann", "phone": PHONE},
    }
    response = await booking.post("/v1/appointments", json=payload, headers=salon.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_appointment_names_and_phone_masked_for_non_admin_scopes(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    day = next_weekday(1)
    created = await book(booking, salon, at(day, 10))
    assert created["customer"] == {"name": "Max Mustermann", "phone": PHONE}
    assert created["service"] == {"id": salon.service_id, "name": "Herrenhaarschnitt"}
    assert created["staff"] == {"id": salon.staff_ids[0], "name": "Anna"}
    assert created["start"] == at(day, 10)
    assert len(created["reference"]) == 6
    admin = await booking.get(f"/v1/appointments/{created['id']}", headers=salon.headers)
    assert admin.json() == created
    for scope in ("operator", "service"):
        headers = await key(db, salon, scope)
        one = await booking.get(f"/v1/appointments/{created['id']}", headers=headers)
        assert one.status_code == 200, (scope, one.text)
        assert one.json() == {**created, "customer": {"name": "Max Mustermann", "phone": MASKED}}
        listed = await booking.get("/v1/appointments", headers=headers)
        assert listed.json() == {"items": [one.json()], "next_cursor": None}
    listed = await booking.get("/v1/appointments", headers=salon.headers)
    assert listed.json()["items"][0]["customer"]["phone"] == PHONE


async def test_operator_reads_appointments_and_callbacks_but_does_not_book(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    day = next_weekday(2)
    created = await book(booking, salon, at(day, 11))
    callback = await booking.post(
        "/v1/callbacks", json={"phone_number": PHONE, "reason": "Rückruf"}, headers=salon.headers
    )
    assert callback.status_code == 201
    operator = await key(db, salon, "operator")
    reads = [
        "/v1/appointments",
        f"/v1/appointments/{created['id']}",
        "/v1/callbacks",
        f"/v1/callbacks/{callback.json()['id']}",
    ]
    for path in reads:
        assert (await booking.get(path, headers=operator)).status_code == 200, path
    refused = await booking.post(
        "/v1/appointments",
        json={
            "service_id": salon.service_id,
            "start": at(day, 14),
            "customer": {"name": "Eva", "phone": "+491709876543"},
        },
        headers=operator,
    )
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    cancel = await booking.post(f"/v1/appointments/{created['id']}/cancel", headers=operator)
    assert cancel.status_code == 403
    agent = await key(db, salon, "agent")
    assert (await booking.get("/v1/appointments", headers=agent)).status_code == 403
    unchanged = await booking.get(f"/v1/appointments/{created['id']}", headers=salon.headers)
    assert unchanged.json()["status"] == "confirmed"


async def pages(booking: httpx.AsyncClient, path: str, headers: dict[str, str]) -> list[list]:
    """Every page of `path` at limit 2, following `next_cursor`."""
    found: list[list] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        response = await booking.get(path, params=params, headers=headers)
        assert response.status_code == 200, response.text
        found.append([item["id"] for item in response.json()["items"]])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return found
        assert len(found) < 10


async def test_appointments_page_by_cursor(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    day = next_weekday(3)
    start = datetime(day.year, day.month, day.day, 9, tzinfo=BERLIN)
    async with db.transaction(salon.tenant.company_id) as session:
        customer = Customer(name="Max Mustermann", phone=PHONE)
        session.add(customer)
        await session.flush()
        # Two pairs share a start (one per staff member): the id breaks the tie.
        rows = [
            salon_appointment(
                salon, customer.id, start + timedelta(hours=h), staff_id=salon.staff_ids[s]
            )
            for h, s in ((0, 0), (0, 1), (1, 0), (1, 1), (2, 0))
        ]
        session.add_all(rows)
        await session.flush()
        expected = [r.id for r in sorted(rows, key=lambda r: (r.starts_at, r.id))]
    found = await pages(booking, "/v1/appointments", salon.headers)
    assert [len(page) for page in found] == [2, 2, 1]
    assert [i for page in found for i in page] == expected
    filtered = await pages(booking, f"/v1/appointments?from={start.isoformat()}", salon.headers)
    assert [i for page in filtered for i in page] == expected


async def test_callbacks_page_by_cursor(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    created = []
    for n in range(5):
        response = await booking.post(
            "/v1/callbacks",
            json={"phone_number": PHONE, "reason": f"Rückruf {n}"},
            headers=salon.headers,
        )
        created.append(response.json())
    expected = [c["id"] for c in sorted(created, key=lambda c: (c["due_at"], c["id"]))]
    operator = await key(db, salon, "operator")
    found = await pages(booking, "/v1/callbacks", operator)
    assert [len(page) for page in found] == [2, 2, 1]
    assert [i for page in found for i in page] == expected


async def test_bad_cursor_is_422_naming_cursor(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    forged = base64.urlsafe_b64encode(b"yesterday|x").decode()
    naive = base64.urlsafe_b64encode(b"2026-01-01T10:00:00|x").decode()
    for path in ("/v1/appointments", "/v1/callbacks"):
        for cursor in ("not a cursor", "%%%", forged, naive):
            response = await booking.get(path, params={"cursor": cursor}, headers=salon.headers)
            assert response.status_code == 422, (path, cursor, response.text)
            assert response.json()["field"] == "cursor"


async def test_reads_with_names_cost_one_statement(services: Services, db: Database) -> None:
    """The names come by joins: one statement for one appointment and for a page of them."""
    salon = await create_salon(db)
    booking = services.clients["booking"]
    day = next_weekday(4)
    created = [await book(booking, salon, at(day, hh)) for hh in (9, 10, 11)]
    for path in ("/v1/appointments", f"/v1/appointments/{created[0]['id']}"):
        await booking.get(path, headers=salon.headers)  # the key lookup is cached after this
        with counted(services) as statements:
            response = await booking.get(path, headers=salon.headers)
        assert response.status_code == 200
        assert _work(statements) == ["SELECT"], (path, statements)
    listed = (await booking.get("/v1/appointments", headers=salon.headers)).json()
    assert [(a["staff"]["name"], a["customer"]["name"]) for a in listed["items"]] == [
        ("Anna", "Max Mustermann")
    ] * 3
