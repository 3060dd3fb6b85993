"""`GET /v1/customers?phone=|name=` and `GET /v1/customers/{id}` (issue 16, item 5): search by
phone (any usual form) or part of the name, the customer with upcoming appointments and
no-show count, phone numbers masked unless the key has the admin scope, tenancy, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.models import Customer
from shared.security.api_keys import issue_key
from tests.support.factories import Salon, create_salon, salon_appointment

PHONE = "+491701234567"
MASKED = "+49170*****67"


async def key(db: Database, salon: Salon, *scopes: str) -> dict[str, str]:
    async with db.transaction(SYSTEM) as session:
        issued = issue_key(
            session, company_id=salon.tenant.company_id, name="k", scopes=list(scopes)
        )
    return {"Authorization": f"Bearer {issued.plaintext}"}


async def customers(db: Database, salon: Salon, *people: tuple[str, str | None]) -> list[str]:
    """Customers (name, phone) created one after the other; their ids in that order."""
    ids = []
    for name, phone in people:
        async with db.transaction(salon.tenant.company_id) as session:
            customer = Customer(name=name, phone=phone, email=f"{name[:3].lower()}@example.de")
            session.add(customer)
            await session.flush()
            ids.append(customer.id)
    return ids


async def test_search_by_phone_in_national_form_masks_for_operators(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    [max_id, _] = await customers(
        db, salon, ("Max Mustermann", PHONE), ("Erika Musterfrau", "+491709876543")
    )
    admin = await booking.get(
        "/v1/customers", params={"phone": "0170 1234567"}, headers=salon.headers
    )
    assert admin.status_code == 200, admin.text
    [found] = admin.json()["items"]
    assert admin.json()["next_cursor"] is None
    assert found["id"] == max_id
    assert found["name"] == "Max Mustermann"
    assert found["phone"] == PHONE
    assert found["email"] == "max@example.de"
    assert found["created_at"].endswith(("+01:00", "+02:00"))  # Europe/Berlin
    operator = await booking.get(
        "/v1/customers", params={"phone": "0170/1234567"}, headers=await key(db, salon, "operator")
    )
    assert operator.json()["items"] == [{**found, "phone": MASKED}]


async def test_search_by_name_is_case_insensitive_contains(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    ids = await customers(
        db,
        salon,
        ("Max Mustermann", PHONE),
        ("Hans Meier", "+491705555555"),
        ("Erika MUSTERFRAU", "+491709876543"),
    )
    response = await booking.get("/v1/customers", params={"name": "muster"}, headers=salon.headers)
    assert [c["id"] for c in response.json()["items"]] == [ids[0], ids[2]]
    both = await booking.get(
        "/v1/customers", params={"name": "muster", "phone": PHONE}, headers=salon.headers
    )
    assert [c["id"] for c in both.json()["items"]] == [ids[0]]
    literal = await booking.get("/v1/customers", params={"name": "%%"}, headers=salon.headers)
    assert literal.json()["items"] == []


async def test_customers_page_by_cursor(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    ids = await customers(db, salon, *((f"Kunde {n}", f"+49170123450{n}") for n in range(5)))
    seen: list[list[str]] = []
    cursor = None
    while True:
        params = {"name": "kunde", "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await booking.get("/v1/customers", params=params, headers=salon.headers)).json()
        seen.append([c["id"] for c in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(page) for page in seen] == [2, 2, 1]
    assert sorted(i for page in seen for i in page) == sorted(ids)
    assert len({i for page in seen for i in page}) == 5


async def test_detail_has_upcoming_and_no_show_count(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    [customer_id] = await customers(db, salon, ("Max Mustermann", PHONE))
    now = datetime.now(UTC).replace(microsecond=0)
    soon, later = now + timedelta(days=2), now + timedelta(days=5)
    async with db.transaction(salon.tenant.company_id) as session:
        rows = [
            salon_appointment(salon, customer_id, later),
            salon_appointment(salon, customer_id, soon, staff_id=salon.staff_ids[1]),
            salon_appointment(salon, customer_id, now - timedelta(days=3), status="no_show"),
            salon_appointment(salon, customer_id, now + timedelta(days=4), status="cancelled"),
        ]
        session.add_all(rows)
        await session.flush()
        upcoming_ids = [rows[1].id, rows[0].id]
    operator = await key(db, salon, "operator")
    response = await booking.get(f"/v1/customers/{customer_id}", headers=operator)
    assert response.status_code == 200, response.text
    detail = response.json()
    assert detail["no_show_count"] == 1
    assert [a["id"] for a in detail["upcoming"]] == upcoming_ids
    assert detail["phone"] == MASKED
    first = detail["upcoming"][0]
    assert first["customer"] == {"name": "Max Mustermann", "phone": MASKED}
    assert first["staff"] == {"id": salon.staff_ids[1], "name": "Ben"}
    assert first["service"] == {"id": salon.service_id, "name": "Herrenhaarschnitt"}
    admin = await booking.get(f"/v1/customers/{customer_id}", headers=salon.headers)
    assert admin.json()["upcoming"][0]["customer"]["phone"] == PHONE


async def test_unknown_or_foreign_customer_is_404(booking: httpx.AsyncClient, db: Database) -> None:
    salon, other = await create_salon(db), await create_salon(db)
    [foreign] = await customers(db, other, ("Max Mustermann", PHONE))
    for customer_id in (foreign, "does-not-exist"):
        response = await booking.get(f"/v1/customers/{customer_id}", headers=salon.headers)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")
    found = await booking.get("/v1/customers", params={"phone": PHONE}, headers=salon.headers)
    assert found.json()["items"] == []


async def test_bad_input_is_422_naming_the_field(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    await customers(db, salon, ("Max Mustermann", PHONE))
    cases = [
        ({}, "phone"),
        ({"name": "M"}, "name"),
        ({"phone": "not a number"}, "phone"),
        ({"name": "Max", "cursor": "nonsense"}, "cursor"),
        ({"name": "Max", "limit": "0"}, "limit"),
    ]
    for params, field in cases:
        response = await booking.get("/v1/customers", params=params, headers=salon.headers)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["field"] == field, (params, response.json())


async def test_scopes(booking: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    [customer_id] = await customers(db, salon, ("Max Mustermann", PHONE))
    for scope, expected in (("operator", 200), ("service", 200), ("agent", 403)):
        headers = await key(db, salon, scope)
        listed = await booking.get("/v1/customers", params={"name": "max"}, headers=headers)
        one = await booking.get(f"/v1/customers/{customer_id}", headers=headers)
        assert (listed.status_code, one.status_code) == (expected, expected), scope
    assert (await booking.get("/v1/customers", params={"name": "max"})).status_code == 401
