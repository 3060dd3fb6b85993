"""Two salons on one database for the agent paths, alike where a leak would hide.

Both have a branch number, a service "Herrenhaarschnitt" and staff "Anna" and "Ben" (the same
names, so a lookup by name that crossed tenants would find the other's rows). They differ
where a mix-up would show: A is in Europe/Berlin with the default notice (2 h) and window
(60 days); B is in Europe/London with 3 days' notice and a 21-day window, a second branch
"Nord" (no staff) and a company hotline (a number without a branch). A's branch number also
routes web calls by its Retell agent id.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import sqlalchemy as sa

from shared import models
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.integrations.retell import signature as retell
from shared.models import Branch, Company, PhoneNumber
from tests.booking.agent_support import enable_retell, signed
from tests.support.factories import Salon, create_salon

B_NOTICE_MINUTES = 3 * 24 * 60
B_WINDOW_DAYS = 21


@dataclass(frozen=True)
class Tenant:
    salon: Salon
    name: str
    timezone: str
    branch_name: str
    hotline: str | None = None
    agent_id: str | None = None

    @property
    def company_id(self) -> str:
        return self.salon.tenant.company_id

    @property
    def number(self) -> str:
        return self.salon.phone_number

    def local(self, day: date, hour: int, minute: int = 0) -> str:
        """The ISO instant an answer gives for a local wall-clock time of this tenant."""
        return datetime.combine(day, time(hour, minute), ZoneInfo(self.timezone)).isoformat()


def new_caller() -> str:
    """A fresh valid German mobile number (per-number rate limits stay per test)."""
    return f"+49170{secrets.randbelow(9_000_000) + 1_000_000}"


async def two_tenants(db: Database) -> tuple[Tenant, Tenant]:
    """A (created first, so "the first company in the table") and B, ready for Retell calls."""
    salon_a, salon_b = await create_salon(db), await create_salon(db)
    for salon in (salon_a, salon_b):
        await enable_retell(db, salon)
    agent_id = f"agent_{uuid.uuid4().hex[:16]}"
    hotline = f"+49306{secrets.randbelow(9_000_000) + 1_000_000}"
    async with db.transaction(SYSTEM) as session:
        # An agent id is claimed by its company first (unique across companies), then named
        # by the number; schemas without the claim table name it on the number alone.
        claim = getattr(models, "RetellAgent", None)
        if claim is not None:
            session.add(claim(company_id=salon_a.tenant.company_id, agent_id=agent_id))
            await session.flush()
        await session.execute(
            sa.update(PhoneNumber)
            .where(PhoneNumber.number == salon_a.phone_number)
            .values(retell_agent_id=agent_id)
        )
        await session.execute(
            sa.update(Company)
            .where(Company.id == salon_b.tenant.company_id)
            .values(
                timezone="Europe/London",
                min_notice_minutes=B_NOTICE_MINUTES,
                booking_window_days=B_WINDOW_DAYS,
            )
        )
        await session.execute(
            sa.update(Branch)
            .where(Branch.id == salon_b.branch_id)
            .values(name="Altstadt", timezone="Europe/London", city="London")
        )
    async with db.transaction(salon_b.tenant.company_id) as session:
        session.add(Branch(name="Nord", timezone="Europe/London", city="London"))
        session.add(PhoneNumber(number=hotline, branch_id=None, label="Hotline"))
    async with db.transaction(SYSTEM, write=False) as session:
        names = {
            row[0]: row[1] for row in await session.execute(sa.select(Company.id, Company.name))
        }
    a = Tenant(
        salon_a, names[salon_a.tenant.company_id], "Europe/Berlin", "Mitte", agent_id=agent_id
    )
    b = Tenant(salon_b, names[salon_b.tenant.company_id], "Europe/London", "Altstadt", hotline)
    return a, b


async def agent_call(
    client: httpx.AsyncClient,
    name: str,
    args: dict[str, Any],
    *,
    caller: str,
    to_number: str | None,
    agent_id: str = "agent_unrouted",
) -> dict[str, Any]:
    """A signed function call with a caller id (path == the body's `name`); its answer."""
    call: dict[str, Any] = {
        "call_id": f"call_{uuid.uuid4().hex[:12]}",
        "agent_id": agent_id,
        "call_type": "phone_call" if to_number else "web_call",
        "direction": "inbound",
        "from_number": caller,
    }
    if to_number is not None:
        call["to_number"] = to_number
    raw, headers = signed({"call": call, "name": name, "args": args})
    response = await client.post(f"/v1/retell/functions/{name}", content=raw, headers=headers)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert json.dumps(answer)
    return answer


async def greeting(
    client: httpx.AsyncClient, *, caller: str, to_number: str | None, agent_id: str = "agent_x"
) -> dict[str, str]:
    """The dynamic variables of Retell's call_inbound webhook for this call."""
    inbound: dict[str, Any] = {"agent_id": agent_id, "from_number": caller}
    if to_number is not None:
        inbound["to_number"] = to_number
    event = {"event": "call_inbound", "event_timestamp": retell.now_ms(), "call_inbound": inbound}
    raw, headers = signed(event)
    response = await client.post("/v1/retell/inbound", content=raw, headers=headers)
    assert response.status_code == 200, response.text
    variables: dict[str, str] = response.json()["call_inbound"]["dynamic_variables"]
    return variables
