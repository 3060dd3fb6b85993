"""A successful booking costs at most 8 SQL statements (counted at the driver), keyed or not,
for a new or a returning customer; the API key lookup is cached after the first request.

The exact figures, REST and agent, named staff and any staff: 4 statements (context, overlap
check, appointment and outbox inserts), +1 on MariaDB (the staff lock), +1 for a new customer,
+2 with an idempotency key (claim, complete), +2 for any staff (the qualified staff and their
calendars, from which the staff member is chosen), +2 for the agent (the signed call's routing
lookup, the names the caller may say).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from shared.db.engine import Database
from tests.booking.agent_support import enable_retell, signed
from tests.booking.test_booking_api import at, body
from tests.conftest import Services
from tests.support.factories import Salon, create_salon, next_weekday

LIMIT = 8
PHONE = "+491701111111"
CUSTOMERS = (("new", 9), ("returning", 10))  # the same phone twice


@contextmanager
def counted(services: Services) -> Iterator[list[str]]:
    engine = services.apps["booking"].state.db.engine.sync_engine
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.split()[0].upper())

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _work(statements: list[str]) -> list[str]:
    return [s for s in statements if s not in ("BEGIN", "COMMIT", "ROLLBACK")]


def expected(backend: str, customer: str, *, keyed: bool, any_staff: bool, agent: bool) -> int:
    return 4 + (backend == "mysql") + (customer == "new") + 2 * keyed + 2 * any_staff + 2 * agent


@pytest.mark.parametrize("keyed", [False, True])
async def test_booking_statement_budget(services: Services, db: Database, keyed: bool) -> None:
    salon = await create_salon(db)
    client = services.clients["booking"]
    day = next_weekday(2)
    await client.get("/v1/appointments", headers=salon.headers)  # warms the key cache
    for hour, phone in ((9, "+491701111111"), (10, "+491701111111")):  # new, then returning
        headers = dict(salon.headers)
        if keyed:
            headers["Idempotency-Key"] = f"budget-{hour}"
        with counted(services) as statements:
            response = await client.post(
                "/v1/appointments", json=body(salon, at(day, hour), phone=phone), headers=headers
            )
        assert response.status_code == 201, response.text
        work = _work(statements)
        assert len(work) <= LIMIT, statements


@pytest.mark.parametrize("any_staff", [False, True], ids=["named", "any"])
@pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "keyed"])
async def test_rest_booking_statements(
    services: Services, db: Database, backend: str, keyed: bool, any_staff: bool
) -> None:
    salon = await create_salon(db)
    client = services.clients["booking"]
    day = next_weekday(2)
    await client.get("/v1/appointments", headers=salon.headers)  # warms the key cache
    for customer, hour in CUSTOMERS:
        headers = dict(salon.headers)
        if keyed:
            headers["Idempotency-Key"] = f"count-{uuid.uuid4().hex}"
        payload = body(salon, at(day, hour), staff=None if any_staff else 0, phone=PHONE)
        with counted(services) as statements:
            response = await client.post("/v1/appointments", json=payload, headers=headers)
        assert response.status_code == 201, response.text
        figure = expected(backend, customer, keyed=keyed, any_staff=any_staff, agent=False)
        assert len(_work(statements)) == figure, (customer, statements)


async def _agent_book(
    services: Services, salon: Salon, args: dict[str, Any], call_id: str | None
) -> tuple[dict[str, Any], list[str]]:
    call: dict[str, Any] = {
        "agent_id": "agent_test",
        "call_type": "phone_call",
        "to_number": salon.phone_number,
        "direction": "inbound",
        "from_number": PHONE,
    }
    if call_id is not None:  # without a call id the agent's call is not keyed
        call["call_id"] = call_id
    raw, headers = signed({"call": call, "name": "book_appointment", "args": args})
    client = services.clients["booking"]
    with counted(services) as statements:
        response = await client.post(
            "/v1/retell/functions/book_appointment", content=raw, headers=headers
        )
    assert response.status_code == 200, response.text
    return response.json(), _work(statements)


@pytest.mark.parametrize("any_staff", [False, True], ids=["named", "any"])
@pytest.mark.parametrize("keyed", [False, True], ids=["unkeyed", "keyed"])
async def test_agent_booking_statements(
    services: Services, db: Database, backend: str, keyed: bool, any_staff: bool
) -> None:
    salon = await create_salon(db)
    await enable_retell(db, salon)
    day = next_weekday(2)

    def args(hour: int) -> dict[str, Any]:
        named = {"staff": "Anna"} if not any_staff else {}
        return {
            "service": "Herrenhaarschnitt",
            "date": day.isoformat(),
            "time": f"{hour}:00",
            "customer_name": "Max Mustermann",
            **named,
        }

    await _agent_book(services, salon, args(8), None)  # before opening: warms the caches
    for customer, hour in CUSTOMERS:
        call_id = f"call_{uuid.uuid4().hex[:12]}" if keyed else None
        answer, work = await _agent_book(services, salon, args(hour), call_id)
        assert answer["status"] == "booked", answer
        figure = expected(backend, customer, keyed=keyed, any_staff=any_staff, agent=True)
        assert len(work) == figure, (customer, work)
