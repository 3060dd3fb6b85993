"""The inbound webhook's greeting: company, branch, and a returning caller's name and next
appointment, as Retell's dynamic variables."""

from __future__ import annotations

from typing import Any

from services.booking.agent import speech
from services.booking.agent.queries import branch_of, caller_greeting
from services.booking.agent.schemas import CallerVariables
from shared.db.tenancy import current_company
from shared.db.types import utcnow
from shared.integrations.retell.auth import RetellCaller
from shared.local_time import zone_of
from shared.phones import e164


async def greeting(session: Any, verified: RetellCaller) -> CallerVariables:
    """The variables of a verified call (the session bound to its company)."""
    variables = CallerVariables()
    company = await current_company(session)
    variables.company_name = company.name if company else ""
    tz = company.timezone if company else "Europe/Berlin"
    if verified.branch_id is not None:
        branch = await branch_of(session, verified.branch_id)
        if branch is not None:
            variables.branch_name = branch.name
            tz = branch.timezone
    caller = e164(verified.call.get("from_number"))
    if caller is None:
        return variables
    known = await caller_greeting(session, caller, utcnow())
    if known.customer_name is None:
        return variables
    variables.customer_name = known.customer_name
    variables.customer_known = "true"
    if known.next_start is not None:
        spoken = speech.spoken_datetime(known.next_start, zone_of(tz))
        variables.next_appointment = f"{known.next_service} am {spoken}"
    return variables
