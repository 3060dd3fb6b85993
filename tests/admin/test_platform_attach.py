"""Phone numbers and Retell agent ids route calls to a company: unique across all companies
(database constraints) and attached only with a platform key (issue 13, item 5)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy.exc import IntegrityError

from shared.db.engine import Database
from shared.models import PhoneNumber, RetellAgent
from tests.admin.support import ADMIN, Org, assert_problem, create, items, unique_phone

NUMBERS = f"{ADMIN}/phone-numbers"


def agent() -> str:
    return f"agent_{uuid.uuid4().hex[:16]}"


async def test_a_company_key_cannot_attach_a_number(booking: httpx.AsyncClient, org: Org) -> None:
    before = await items(booking, org.tenant, "phone-numbers")
    for body in (
        {"number": unique_phone()},
        {"number": unique_phone(), "retell_agent_id": agent()},
    ):
        response = await booking.post(NUMBERS, headers=org.headers, json=body)
        assert_problem(response, 403, "platform_key_required", "number")
    assert await items(booking, org.tenant, "phone-numbers") == before


async def test_a_company_key_cannot_change_number_or_agent_but_may_label(
    booking: httpx.AsyncClient, org: Org
) -> None:
    url = f"{NUMBERS}/{org.phone_number['id']}"
    moved = await booking.patch(url, headers=org.headers, json={"number": unique_phone()})
    assert_problem(moved, 403, "platform_key_required", "number")
    routed = await booking.patch(url, headers=org.headers, json={"retell_agent_id": agent()})
    assert_problem(routed, 403, "platform_key_required", "retell_agent_id")
    assert (await booking.get(url, headers=org.headers)).json() == org.phone_number

    same = {"number": org.phone_number["number"], "label": "Empfang", "active": False}
    labelled = await booking.patch(url, headers=org.headers, json=same)
    assert labelled.status_code == 200, labelled.text
    assert (labelled.json()["label"], labelled.json()["active"]) == ("Empfang", False)
    # Detaching is not attaching: the company may remove its own number.
    assert (await booking.delete(url, headers=org.headers)).status_code == 204


async def test_one_agent_serves_one_company_only(
    booking: httpx.AsyncClient, org: Org, other_org: Org
) -> None:
    shared_agent = agent()
    first = await create(
        booking,
        org.tenant,
        "phone-numbers",
        {"number": unique_phone(), "retell_agent_id": shared_agent},
        org.platform_headers,
    )
    second = await create(  # several numbers of ONE company may share its agent
        booking,
        org.tenant,
        "phone-numbers",
        {"number": unique_phone(), "retell_agent_id": shared_agent},
        org.platform_headers,
    )
    before = await items(booking, other_org.tenant, "phone-numbers")

    stolen = await booking.post(
        NUMBERS,
        headers=other_org.platform_headers,
        json={"number": unique_phone(), "retell_agent_id": shared_agent},
    )
    assert_problem(stolen, 409, "conflict", "retell_agent_id")
    repointed = await booking.patch(
        f"{NUMBERS}/{other_org.phone_number['id']}",
        headers=other_org.platform_headers,
        json={"retell_agent_id": shared_agent},
    )
    assert_problem(repointed, 409, "conflict", "retell_agent_id")
    assert await items(booking, other_org.tenant, "phone-numbers") == before

    # Once no number of the first company uses the agent, the platform may move it.
    for number in (first, second):
        released = await booking.patch(
            f"{NUMBERS}/{number['id']}",
            headers=org.platform_headers,
            json={"retell_agent_id": None},
        )
        assert released.status_code == 200, released.text
    moved = await booking.patch(
        f"{NUMBERS}/{other_org.phone_number['id']}",
        headers=other_org.platform_headers,
        json={"retell_agent_id": shared_agent},
    )
    assert moved.status_code == 200, moved.text
    back = await booking.patch(
        f"{NUMBERS}/{first['id']}",
        headers=org.platform_headers,
        json={"retell_agent_id": shared_agent},
    )
    assert_problem(back, 409, "conflict", "retell_agent_id")


async def test_the_database_refuses_one_agent_for_two_companies(
    db: Database, org: Org, other_org: Org
) -> None:
    taken = agent()
    async with db.transaction(org.tenant.company_id) as session:
        session.add(RetellAgent(company_id=org.tenant.company_id, agent_id=taken))
    with pytest.raises(IntegrityError):
        async with db.transaction(other_org.tenant.company_id) as session:
            session.add(RetellAgent(company_id=other_org.tenant.company_id, agent_id=taken))
    # A number can only name an agent its own company claimed (composite foreign key).
    with pytest.raises(IntegrityError):
        async with db.transaction(other_org.tenant.company_id) as session:
            session.add(
                PhoneNumber(
                    company_id=other_org.tenant.company_id,
                    number=unique_phone(),
                    retell_agent_id=taken,
                )
            )
    # Phone numbers were already unique across companies.
    with pytest.raises(IntegrityError):
        async with db.transaction(other_org.tenant.company_id) as session:
            session.add(
                PhoneNumber(
                    company_id=other_org.tenant.company_id, number=org.phone_number["number"]
                )
            )
