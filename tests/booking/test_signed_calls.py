"""A Retell signature binds what it acts on (issue 13, item 5; ADR 0012).

- The function in the path must be the one the signed body names: a body signed for one
  function cannot be replayed to another (400 `function_name_mismatch`, nothing done).
- The tenant of a platform-key signature comes from the signed body only; `?company_id=`
  selects a company only when that company's own Retell key signed the call.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from shared.db.engine import Database
from shared.models import Appointment, IdempotencyKey
from tests.booking.agent_support import CALLER, enable_retell, signed
from tests.conftest import Services
from tests.support.factories import Salon, create_salon, next_weekday

PLATFORM_KEY = "key_platform_5a4b3c2d1e0f98877665544332211000"


@pytest.fixture
def platform_signing(services: Services) -> Iterator[None]:
    """The booking app with a platform-wide RETELL_API_KEY configured."""
    app = services.apps["booking"]
    before = app.state.settings
    app.state.settings = before.model_copy(update={"retell_api_key": PLATFORM_KEY})
    yield
    app.state.settings = before


async def _salon(db: Database) -> Salon:
    salon = await create_salon(db)
    await enable_retell(db, salon)
    return salon


async def _count(db: Database, salon: Salon, model: Any) -> int:
    async with db.transaction(salon.tenant.company_id, write=False) as session:
        return int(await session.scalar(select(func.count(model.id))) or 0)


def _book_args() -> dict[str, Any]:
    return {
        "service": "Herrenhaarschnitt",
        "date": next_weekday(2).isoformat(),
        "time": "10:00",
        "customer_name": "Max Mustermann",
        "customer_phone": CALLER,
        "staff": "Anna",
    }


def _wrapped(salon: Salon, name: str, args: dict[str, Any]) -> dict[str, Any]:
    call = {
        "call_id": f"call_{uuid.uuid4().hex[:12]}",
        "call_type": "phone_call",
        "direction": "inbound",
        "from_number": CALLER,
        "to_number": salon.phone_number,
    }
    return {"call": call, "name": name, "args": args}


def _assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


async def test_a_body_signed_for_one_function_is_refused_on_another_path(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await _salon(db)
    raw, headers = signed(_wrapped(salon, "check_availability", _book_args()))

    replayed = await booking.post(
        "/v1/retell/functions/book_appointment", content=raw, headers=headers
    )

    _assert_problem(replayed, 400, "function_name_mismatch")
    assert await _count(db, salon, Appointment) == 0
    assert await _count(db, salon, IdempotencyKey) == 0
    own_path = await booking.post(
        "/v1/retell/functions/check_availability", content=raw, headers=headers
    )
    assert own_path.status_code == 200, own_path.text
    assert own_path.json()["status"] in ("available", "unavailable")


async def test_a_wrapped_body_without_a_name_binds_no_function(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await _salon(db)
    body = _wrapped(salon, "book_appointment", _book_args())
    del body["name"]
    raw, headers = signed(body)
    response = await booking.post(
        "/v1/retell/functions/book_appointment", content=raw, headers=headers
    )
    _assert_problem(response, 400, "function_name_mismatch")
    assert await _count(db, salon, Appointment) == 0


@pytest.mark.usefixtures("platform_signing")
@pytest.mark.parametrize("function", ["book_appointment", "check_availability"])
async def test_a_platform_signature_is_not_steered_by_the_company_id_parameter(
    booking: httpx.AsyncClient, db: Database, function: str
) -> None:
    target = await _salon(db)
    raw, headers = signed(json.dumps(_book_args()).encode(), key=PLATFORM_KEY)  # args only

    response = await booking.post(
        f"/v1/retell/functions/{function}?company_id={target.tenant.company_id}",
        content=raw,
        headers=headers,
    )

    _assert_problem(response, 401, "retell_signature_invalid")
    assert "signed body" in response.json()["detail"]
    assert await _count(db, target, Appointment) == 0
    assert await _count(db, target, IdempotencyKey) == 0


@pytest.mark.usefixtures("platform_signing")
async def test_a_platform_signature_acts_on_the_company_its_body_names(
    booking: httpx.AsyncClient, db: Database
) -> None:
    named, other = await _salon(db), await _salon(db)
    raw, headers = signed(_wrapped(named, "book_appointment", _book_args()), key=PLATFORM_KEY)

    response = await booking.post(
        f"/v1/retell/functions/book_appointment?company_id={other.tenant.company_id}",
        content=raw,
        headers=headers,
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "booked", response.text
    assert (await _count(db, named, Appointment), await _count(db, other, Appointment)) == (1, 0)


async def test_args_only_call_signed_with_the_companys_own_key_uses_company_id(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon, other = await _salon(db), await _salon(db)
    raw, headers = signed(json.dumps(_book_args()).encode())  # the companies' own key
    url = "/v1/retell/functions/check_availability?company_id={}"

    answer = await booking.post(url.format(salon.tenant.company_id), content=raw, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] in ("available", "unavailable")

    # Another company's own key did not sign it: naming that company does not help.
    other_key_raw, other_headers = signed(
        json.dumps(_book_args()).encode(), key="key_someone_else_000000000000000000"
    )
    refused = await booking.post(
        url.format(other.tenant.company_id), content=other_key_raw, headers=other_headers
    )
    _assert_problem(refused, 401, "retell_signature_invalid")
