"""Who the agent is talking to, and which appointments that caller may see or change.

A caller's identity is the signed call's `from_number` (the caller ID), never a number in the
args: with a caller ID, list/cancel/reschedule reach that number's appointments only (a
`reference` arg may pick one of them). Without one (withheld number, web call, args-only mode)
the caller names one appointment by its booking `reference` plus the `customer_name` on it;
wrong or missing values answer `not_found`, the same whether the reference exists or not.

Guessing is bounded across replicas (Redis, `TriesGuard`): a try reserves a place in the
call's budget and in the reference's (5 each; the reference's per hour) and a successful try
gives its places back, so only failures count. Once a budget is spent every try answers
`not_found` without looking, even with the right values.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any, Final

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.agent import queries, speech
from services.booking.agent.inputs import Refusal, invalid, parse_date, parse_time, text_arg
from services.booking.agent.matching import same_name
from services.booking.appointments.policy_client import PolicyClient
from shared.errors import ServiceUnavailable
from shared.local_time import to_local
from shared.models import LIVE_STATUSES, Appointment
from shared.phones import e164
from shared.security.references import normalize_reference
from shared.web.rate_limit import RateLimiter

log = logging.getLogger(__name__)

MAX_FAILED_TRIES: Final = 5
CALL_WINDOW_S: Final = 24 * 3600  # longer than any call: in effect "per call"
REFERENCE_WINDOW_S: Final = 3600
_NO_CALL_ID: Final = "-"  # args-only calls carry no call id: they share one budget


@dataclass(frozen=True)
class Ticket:
    """One reserved try: the buckets it counts in and its member there."""

    keys: tuple[str, ...]
    member: str


class TriesGuard:
    """Failed identification tries per call and per booking reference, shared by replicas.

    Fails closed: when Redis cannot say, the try is refused as unavailable (a callback is
    offered) rather than allowed unbounded."""

    def __init__(self, redis: Redis) -> None:
        self.limiter = RateLimiter(redis, prefix="tries", fail_open=False, timeout_s=2.0)

    async def begin(
        self, company_id: str, call_id: str | None, reference: str | None
    ) -> Ticket | None:
        """Reserve a try in the call's budget and, for a well-formed reference, in the
        reference's; None when either is spent."""
        member = uuid.uuid4().hex
        keys = [f"call:{company_id}:{call_id or _NO_CALL_ID}"]
        windows = [CALL_WINDOW_S]
        if reference is not None:
            keys.append(f"ref:{company_id}:{reference}")
            windows.append(REFERENCE_WINDOW_S)
        try:
            for key, window in zip(keys, windows, strict=True):
                decision = await self.limiter.hit(key, MAX_FAILED_TRIES, window, member=member)
                if not decision.allowed:
                    return None
        except (RedisError, OSError) as exc:
            raise ServiceUnavailable("The try counter is unavailable.") from exc
        return Ticket(tuple(keys), member)

    async def succeeded(self, ticket: Ticket) -> None:
        """The try identified an appointment: it does not count as a failure."""
        for key in ticket.keys:
            try:
                await self.limiter.forgive(key, ticket.member)
            except (RedisError, OSError):  # then it counts as failed: the safe side
                log.warning("could not take back a successful identification try")


def tries_guard(state: Any) -> TriesGuard:
    """The app's guard (one per app: its script is registered once)."""
    guard = getattr(state, "tries_guard", None)
    if guard is None:
        guard = TriesGuard(state.redis)
        state.tries_guard = guard
    return guard


@dataclass(frozen=True)
class AgentCall:
    company_id: str
    branch_id: str | None  # the called number's branch; None for a company hotline
    call_id: str | None
    caller: str | None  # the caller ID (E.164) of the signed call; never taken from the args
    name: str
    args: dict[str, Any]
    policy: PolicyClient
    now: datetime
    tries: TriesGuard | None = None

    def phone_for_booking(self) -> str | None:
        """`customer_phone` if given (one may book for someone else), else the caller."""
        given = text_arg(self.args, "customer_phone", 50)
        if given is not None:
            number = e164(given)
            if number is None:
                raise invalid("missing_customer_phone")
            return number
        return self.caller

    def speaks_for(self, phone: str) -> bool:
        """Whether this call comes from `phone` itself (may change that customer's details)."""
        return self.caller is not None and self.caller == phone

    def rate_limit_number(self) -> str | None:
        """The number this call's per-number rate limit counts: the caller ID, else the
        number given in the args (so a withheld number cannot hammer one customer's)."""
        if self.caller is not None:
            return self.caller
        return e164(text_arg(self.args, "customer_phone", 50))


Row = tuple[Appointment, str]  # the appointment and its branch's time zone


async def by_reference(session: AsyncSession, call: AgentCall) -> Row:
    """No caller ID: the one appointment named by `reference` + `customer_name`, any status;
    else a `not_found` Refusal (also once the tries are spent)."""
    raw_reference = text_arg(call.args, "reference", 100)
    name = text_arg(call.args, "customer_name")
    if raw_reference is None or name is None:
        raise Refusal("not_found", speech.identify_by_reference())  # nothing guessed yet
    if call.tries is None:  # no counter to bound guessing: never look
        raise Refusal("not_found", speech.not_identified())
    reference = normalize_reference(raw_reference)
    ticket = await call.tries.begin(call.company_id, call.call_id, reference)
    if ticket is None:
        raise Refusal("not_found", speech.tries_exhausted(), reason="too_many_attempts")
    row = None if reference is None else await queries.appointment_by_reference(session, reference)
    if row is None or not same_name(name, row[2]):
        raise Refusal("not_found", speech.not_identified())
    await call.tries.succeeded(ticket)
    return row[0], row[1]


def _on(row: Row, day: date, at: time | None) -> bool:
    local = to_local(row[0].starts_at, row[1])
    return local.date() == day and (at is None or local.time().replace(second=0) == at)


async def own_appointment(session: AsyncSession, call: AgentCall) -> Row:
    """The live appointment a cancel/reschedule acts on: with a caller ID, one of the
    caller's own (by `reference`, `appointment_id`, or `date` + `time`); without, the one
    named by reference and name."""
    if call.caller is None:
        appointment, tz = await by_reference(session, call)
        if appointment.status not in LIVE_STATUSES:
            raise Refusal("not_found", speech.not_identified())
        return appointment, tz
    caller = call.caller
    raw_reference = text_arg(call.args, "reference", 100)
    appointment_id = text_arg(call.args, "appointment_id", 64)
    found: queries.AppointmentRow | None
    if raw_reference is not None:
        reference = normalize_reference(raw_reference)
        found = None
        if reference is not None:
            rows = await queries.callers_live_appointments(session, caller, reference=reference)
            found = rows[0] if rows else None
    elif appointment_id is not None:
        rows = await queries.callers_live_appointments(
            session, caller, appointment_id=appointment_id
        )
        found = rows[0] if rows else None
    else:
        raw_date = text_arg(call.args, "date", 20)
        if raw_date is None:
            raise invalid("missing_appointment")
        day = parse_date(raw_date)
        raw_time = text_arg(call.args, "time", 20)
        wanted = parse_time(raw_time) if raw_time else None
        candidates = await queries.callers_live_appointments(session, caller)
        found = next((r for r in candidates if _on((r[0], r[1]), day, wanted)), None)
    if found is None:
        raise Refusal("not_found", speech.appointment_not_found())
    return found[0], found[1]


@dataclass(frozen=True)
class Listed:
    appointment: Appointment
    timezone: str
    service: str
    staff: str


async def listed_appointments(session: AsyncSession, call: AgentCall) -> list[Listed]:
    """What `list_appointments` may show: the caller's upcoming appointments (a `reference`
    narrows them to one), or without a caller ID the one named by reference and name."""
    if call.caller is None:
        appointment, _tz = await by_reference(session, call)
        rows = await queries.upcoming_appointments(session, call.now, appointment_id=appointment.id)
    else:
        raw_reference = text_arg(call.args, "reference", 100)
        wanted = None if raw_reference is None else (normalize_reference(raw_reference) or "")
        rows = await queries.upcoming_appointments(
            session, call.now, caller=call.caller, reference=wanted
        )
    return [Listed(a, tz, service, staff) for a, tz, service, staff in rows]
