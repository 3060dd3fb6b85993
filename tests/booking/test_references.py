"""Booking references: 6 characters without look-alikes, unique per company, on every
appointment whatever the path, in the REST JSON and in the agent's answers."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from shared.db.engine import Database
from shared.models import Appointment, Customer
from shared.security.references import ALPHABET, new_reference, normalize_reference, spelled
from tests.booking.agent_support import call_function, enable_retell
from tests.booking.test_booking_api import at, body
from tests.support.factories import Salon, create_salon, next_weekday, salon_appointment

FORMAT = re.compile(r"^[ABCDEFGHJKMNPQRSTUVWXYZ23456789]{6}$")


def test_the_alphabet_has_no_look_alikes() -> None:
    assert len(ALPHABET) == len(set(ALPHABET)) == 31
    assert not set("01IOL") & set(ALPHABET)
    drawn = {new_reference() for _ in range(2000)}
    assert all(FORMAT.match(code) for code in drawn)
    assert len(drawn) > 1990  # random, not a sequence or a constant
    assert set("".join(drawn)) == set(ALPHABET)


@pytest.mark.parametrize(
    ("spoken", "expected"),
    [
        ("K7M2P9", "K7M2P9"),
        ("k7m2p9", "K7M2P9"),
        ("K 7 M 2 P 9", "K7M2P9"),
        ("k-7-m-2-p-9", "K7M2P9"),
        ("K sieben M zwei P neun", "K7M2P9"),
        ("K seven M two P nine", "K7M2P9"),
        ("A fünf B vier C drei", "A5B4C3"),
        ("K7M2P", None),  # too short
        ("K7M2P9X", None),  # too long
        ("K7M2P0", None),  # 0 is not in the alphabet
        ("", None),
        ("x" * 500, None),
    ],
)
def test_a_reference_as_a_transcript_passes_it(spoken: str, expected: str | None) -> None:
    assert normalize_reference(spoken) == expected


def test_spelled_for_text_to_speech() -> None:
    assert spelled("K7M2P9") == "K 7 M 2 P 9"


async def _insert(db: Database, salon: Salon, count: int, offset: int) -> None:
    base = datetime(2030, 1, 7, 8, tzinfo=UTC)
    async with db.transaction(salon.tenant.company_id) as session:
        customer = Customer(name="Viele Termine", phone=f"+4917{secrets.randbelow(10**8):08d}")
        session.add(customer)
        await session.flush()
        for i in range(offset, offset + count):
            start = base + timedelta(minutes=45 * i)
            session.add(salon_appointment(salon, customer.id, start))


async def _references(db: Database, salon: Salon) -> list[str]:
    async with db.transaction(salon.tenant.company_id, write=False) as session:
        return list(await session.scalars(select(Appointment.reference)))


async def test_500_appointments_of_a_company_get_500_different_references(
    db: Database,
) -> None:
    salon = await create_salon(db)
    for batch in range(5):
        await _insert(db, salon, 100, batch * 100)
    references = await _references(db, salon)
    assert len(references) == 500
    assert len(set(references)) == 500
    assert all(FORMAT.match(code) for code in references)


async def test_a_drawn_reference_already_taken_is_drawn_again(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With only 520 possible codes, 500 appointments (in batches, so both stored and
    same-flush codes collide) still end up with 500 different ones."""
    pool = sorted({new_reference() for _ in range(600)})[:520]
    monkeypatch.setattr("shared.models.appointment.new_reference", lambda: secrets.choice(pool))
    salon = await create_salon(db)
    other = await create_salon(db)
    for batch in range(5):
        await _insert(db, salon, 100, batch * 100)
    await _insert(db, other, 20, 0)  # another company may reuse codes: unique per company
    references = await _references(db, salon)
    assert len(set(references)) == 500
    assert set(references) <= set(pool)
    assert len(set(await _references(db, other))) == 20


async def test_references_are_unique_per_company_in_the_database(db: Database) -> None:
    """The UNIQUE index refuses a duplicate even when the code is set by hand."""
    salon = await create_salon(db)
    await _insert(db, salon, 1, 0)
    [taken] = await _references(db, salon)
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        async with db.transaction(salon.tenant.company_id) as session:
            customer = await session.scalar(select(Customer))
            assert customer is not None
            start = datetime(2031, 1, 7, 8, tzinfo=UTC)
            session.add(salon_appointment(salon, customer.id, start, reference=taken))
    async with db.transaction(salon.tenant.company_id, write=False) as session:
        assert await session.scalar(select(func.count()).select_from(Appointment)) == 1


async def test_rest_appointments_carry_their_reference(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    day = next_weekday(1)
    created = await booking.post(
        "/v1/appointments", json=body(salon, at(day, 10)), headers=salon.headers
    )
    assert created.status_code == 201, created.text
    reference = created.json()["reference"]
    assert FORMAT.match(reference)
    read = await booking.get(f"/v1/appointments/{created.json()['id']}", headers=salon.headers)
    assert read.json()["reference"] == reference
    listed = await booking.get("/v1/appointments", headers=salon.headers)
    assert [item["reference"] for item in listed.json()["items"]] == [reference]
    assert await _references(db, salon) == [reference]


async def test_the_agent_says_the_reference_letter_by_letter(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    await enable_retell(db, salon)
    day = next_weekday(2)
    args = {
        "service": "Herrenhaarschnitt",
        "date": day.isoformat(),
        "time": "10:00",
        "customer_name": "Max Mustermann",
        "staff": "Anna",
    }
    answer = (await call_function(booking, salon, "book_appointment", args)).json()
    assert answer["status"] == "booked", answer
    reference = answer["reference"]
    assert FORMAT.match(reference)
    assert answer["message"].endswith(f" Ihre Buchungsnummer ist {' '.join(reference)}.")
    assert await _references(db, salon) == [reference]
    listed = (await call_function(booking, salon, "list_appointments", {})).json()
    assert [(a["appointment_id"], a["reference"]) for a in listed["appointments"]] == [
        (answer["appointment_id"], reference)
    ]
