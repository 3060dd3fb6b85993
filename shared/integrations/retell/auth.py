"""Who is calling: verify a Retell request's signature and find its tenant and branch.

The signature is checked before anything else is done. The key is the tenant's Retell API key,
found through the called number (`call.to_number`, or `call_inbound.to_number`) or the agent
id, and the platform-wide `RETELL_API_KEY` is also accepted. Nothing but this lookup happens
before verification.

What a signature binds (docs/adr/0012): the tenant comes from the signed body (number, agent
id: both unique across companies) or, for "args only" function calls whose body names no call,
from the `company_id` query parameter, but only when that company's OWN Retell key verified
the signature: a platform-key signature is never steered to a company by the query string.
A wrapped body's `name` must equal the function in the path (`require_signed_name`).

Every refusal carries a `reason` (for the log line; never a secret). With `known_tenant=True`
(the agent's functions) a call naming a number, agent id or company_id that no active company
has is `RetellNumberUnknown` (404; a malformed signature header stays a 401) and a bad signature
`RetellSignatureInvalid` (401); other callers keep the plain `Unauthorized`.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.scoped import scoped
from shared.db.tenancy import SYSTEM
from shared.errors import FunctionNameMismatch, NotFound, Unauthorized
from shared.integrations.retell import signature as retell
from shared.models import Company, PhoneNumber
from shared.phones import e164

MAX_BODY = 1024 * 1024


class SignatureRefused(Unauthorized):
    """The request is not signed by a key that may act for its tenant; `reason` says why."""

    def __init__(self, detail: str, reason: str) -> None:
        super().__init__(detail)
        self.reason = reason


class RetellSignatureInvalid(SignatureRefused):
    status, code, title = 401, "retell_signature_invalid", "Retell signature invalid"


class RetellNumberUnknown(NotFound):
    """No active company has the called number (or agent id) of a signed call."""

    status, code, title = 404, "retell_number_unknown", "Called number unknown"
    reason = "number_unknown"


@dataclass(frozen=True)
class RetellCaller:
    """The verified request: its tenant and branch, and Retell's signed JSON as sent (dicts:
    their shape is the vendor's, read by each function's loose inputs)."""

    company_id: str | None
    branch_id: str | None
    payload: dict[str, Any]
    call: dict[str, Any]


MAX_DEPTH = 32  # Retell's bodies nest 3-4 levels; deeper is garbage, not a call


def well_formed(value: object, max_depth: int = MAX_DEPTH) -> bool:
    """No nesting deeper than `max_depth` and no lone surrogates (text UTF-8 cannot store).

    Iterative, so a pathological body cannot exhaust the stack here or later, when the args
    are hashed and stored.
    """
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return False
        if isinstance(item, dict):
            stack.extend((key, depth + 1) for key in item)
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


def parse_json_object(raw: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is not one (or not a sane one)."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return value if isinstance(value, dict) and well_formed(value) else None


@functools.cache
def _route_statement(by_number: bool, by_agent: bool) -> Any:
    """The routing lookup, built once per form (building and scoping it per call cost more
    than running it): the active number or agent of an active company, the called number
    first."""
    conditions = []
    if by_number:
        conditions.append(PhoneNumber.number == sa.bindparam("number"))
    if by_agent:
        conditions.append(PhoneNumber.retell_agent_id == sa.bindparam("agent_id"))
    return scoped(
        select(Company, PhoneNumber.branch_id, PhoneNumber.number)
        .join(PhoneNumber, PhoneNumber.company_id == Company.id)
        .where(or_(*conditions), PhoneNumber.active.is_(True), Company.active.is_(True))
        .order_by(PhoneNumber.number != sa.bindparam("first_number"))
        .limit(1),
        SYSTEM,
    )


_COMPANY = scoped(
    select(Company).where(Company.id == sa.bindparam("company_id"), Company.active.is_(True)),
    SYSTEM,
)


async def _route(
    session: AsyncSession, to_number: str | None, agent_id: str | None, company_id: str | None
) -> tuple[Company | None, str | None]:
    """The company (and branch) a call belongs to, by called number, agent id or explicit id.

    Routing precedes verification and any tenant: SYSTEM-scoped lookups (shared.db.scoped)."""
    if to_number or agent_id:
        params = {"number": to_number, "agent_id": agent_id, "first_number": to_number or ""}
        statement = _route_statement(bool(to_number), bool(agent_id))
        row = (await session.execute(statement, params)).first()
        if row is not None:
            return row[0], row[1]
    if company_id:
        company = await session.scalar(_COMPANY, {"company_id": company_id})
        return company, None
    return None, None


async def authenticate(
    session: AsyncSession,
    raw: bytes,
    signature: str | None,
    *,
    platform_key: str | None,
    company_hint: str | None = None,
    call_key: str = "call",
    known_tenant: bool = False,
) -> RetellCaller:
    """Verify the request and identify the tenant; 401 (and nothing else done) when invalid.

    `known_tenant`: refuse a call no company claims (404) instead of answering it as nobody's,
    and refuse bad signatures with `RetellSignatureInvalid`."""
    refused = RetellSignatureInvalid if known_tenant else SignatureRefused
    if not signature:
        raise refused("Missing X-Retell-Signature.", "missing_signature")
    parsed = parse_json_object(raw)
    payload = parsed or {}
    call = payload.get(call_key) if isinstance(payload.get(call_key), dict) else {}
    assert isinstance(call, dict)
    to_number = e164(call.get("to_number"))
    agent_id = call.get("agent_id") if isinstance(call.get("agent_id"), str) else None
    routed, branch_id = await _route(session, to_number, agent_id, None)
    hinted = None
    if routed is None and company_hint:
        hinted, _ = await _route(session, None, None, company_hint)
    candidate = routed or hinted
    named = to_number or agent_id or company_hint
    if known_tenant and candidate is None and named and retell.parse(signature) is not None:
        raise _unknown(to_number, agent_id, company_hint)
    own_key = candidate.retell_api_key if candidate else None
    if own_key and retell.verify(raw, own_key, signature):
        company = candidate
    elif platform_key and retell.verify(raw, platform_key, signature):
        if hinted is not None:
            raise refused(
                "A platform-key signature must name its tenant in the signed body "
                "(call.to_number or call.agent_id); company_id only selects a company whose "
                "own Retell key signs the call.",
                "platform_key_with_company_id",
            )
        company = routed
    elif parsed is None and candidate is None:
        raise refused(
            "The body is not a well-formed JSON object naming the call, so its signature "
            "cannot be checked.",
            "body_not_json",
        )
    else:
        raise refused(
            "Invalid or stale Retell signature.", _why_not(signature, bool(own_key or platform_key))
        )
    return RetellCaller(
        company_id=company.id if company else None,
        branch_id=branch_id,
        payload=payload,
        call=call,
    )


def _unknown(to_number: str | None, agent_id: str | None, hint: str | None) -> RetellNumberUnknown:
    named = " and ".join(
        part
        for part in (
            f"called number {to_number}" if to_number else "",
            f"agent id {agent_id}" if agent_id else "",
            f"company_id {hint}" if hint else "",
        )
        if part
    )
    return RetellNumberUnknown(
        f"No active company has the {named}: register the number under "
        "/v1/admin/phone-numbers (with the Retell agent id) first.",
        to_number=to_number,
    )


def _why_not(signature: str, any_key: bool) -> str:
    """Why a signature did not verify, without the key or the digest."""
    found = retell.parse(signature)
    if found is None:
        return "malformed_signature"
    if not retell.fresh(found[0]):
        return "stale_timestamp"
    return "digest_mismatch" if any_key else "no_retell_key_configured"


def require_signed_name(payload: dict[str, Any], path_name: str) -> None:
    """A wrapped call (`call` + `args`) must name the function of the path in its signed
    `name`: else a body signed for one function could be replayed to another. An "args only"
    body names none; the path is then the only name (ADR 0012 says how deployments guard it)."""
    wrapped = isinstance(payload.get("args"), dict) and isinstance(payload.get("call"), dict)
    if wrapped and payload.get("name") != path_name:
        raise FunctionNameMismatch(
            "The signed body names another function than the path; nothing was done."
        )
