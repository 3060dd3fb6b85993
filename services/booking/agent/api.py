"""Retell endpoints: the agent's functions and the inbound-call webhook.

Every request is verified (X-Retell-Signature over the raw body, 5-minute window) before
anything else; nothing is done on a refusal. A function call to a number no company has is a
404 `retell_number_unknown`, a bad signature a 401 `retell_signature_invalid`, an unknown
function name a 404 `unknown_function` (docs/adr/0022); each is logged once with its reason.
A well-formed call of a known function answers 200 with the outcome in `status`; a refusal
rolls the transaction back. `GET /v1/retell/functions` lists the functions in Retell's
custom-function format (docs/retell-integration.md).

The agent cannot speak a 503: when the database is unavailable anywhere in the request
(the tenant lookup that precedes verification, the function, the commit) a function call is
answered 200 `needs_callback` with a sentence offering a callback (`request_callback` itself:
`unavailable`, call again later), and the inbound webhook gets the answer of an unknown
caller (`_AgentRoute`, docs/adr/0019). Nothing is done then; the failure recorder has counted a
refused booking attempt first.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.types import Scope

from services.booking.agent import speech
from services.booking.agent.definitions import FUNCTION_PATH, definitions, request_body
from services.booking.agent.functions import FUNCTIONS, MUTATING, AgentCall, refusal_for
from services.booking.agent.greeting import greeting
from services.booking.agent.identity import tries_guard
from services.booking.agent.inputs import Refusal
from services.booking.agent.schemas import (
    CallerVariables,
    DynamicVariables,
    FunctionAnswer,
    InboundAnswer,
    RetellFunctionsOut,
    Said,
)
from services.booking.appointments import idempotency
from services.booking.appointments.refusal_notices import QuotaNotices
from services.booking.ops.failures import AgentBookingAttempt
from shared.db.tenancy import bind_tenant
from shared.db.types import utcnow
from shared.errors import AgentAnswer, AppError, NotFound, PayloadTooLarge, RateLimited
from shared.integrations.retell.auth import (
    MAX_BODY,
    RetellCaller,
    RetellNumberUnknown,
    SignatureRefused,
    authenticate,
    require_signed_name,
)
from shared.observability.logging import correlation_id_var
from shared.phones import e164
from shared.web.auth import ReaderPrincipal
from shared.web.deps import Session
from shared.web.rate_limit import RateLimiter, caller_bucket, enforce

log = logging.getLogger(__name__)
INBOUND_PATH = "/v1/retell/inbound"


def _inbound(variables: CallerVariables) -> InboundAnswer:
    return InboundAnswer(call_inbound=DynamicVariables(dynamic_variables=variables))


def database_unavailable_answer(path: str, function: str | None) -> dict[str, Any]:
    """What the agent hears while the database is unavailable (docs/adr/0019)."""
    if path == INBOUND_PATH:
        return _inbound(CallerVariables()).model_dump()
    if function == "request_callback":
        return Said(status="unavailable", message=speech.callback_unavailable()).model_dump()
    return Said(status="needs_callback", message=speech.service_unavailable()).model_dump()


class _AgentRoute(APIRoute):
    """The agent's routes answer 200 with words when the database is unavailable: a 503 is
    nothing the agent can say. `shared.web.problems.database_refusal` asks the route for this
    answer after every dependency has left (the session rolled back, the failure recorder
    counted a refused booking)."""

    def database_unavailable_answer(self, scope: Scope) -> Response | None:
        if self.path not in (FUNCTION_PATH, INBOUND_PATH):
            return None
        function = scope.get("path_params", {}).get("name")
        return JSONResponse(database_unavailable_answer(self.path, function))


class UnknownFunction(NotFound):
    status, code, title = 404, "unknown_function", "Unknown function"


def _needs_callback() -> dict[str, Any]:
    return Said(status="invalid_request", message=speech.needs_callback()).model_dump()


router = APIRouter(prefix="/v1/retell", tags=["retell"], route_class=_AgentRoute)
Signature = Annotated[str | None, Header(alias="X-Retell-Signature")]


async def _raw_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise PayloadTooLarge("The request body is larger than 1 MiB.")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise PayloadTooLarge("The request body is larger than 1 MiB.")
    return body


async def _caller(
    request: Request, session: Any, raw: bytes, signature: str | None, **kw: Any
) -> RetellCaller:
    # The session stays unbound: the routing lookup is SYSTEM-scoped
    # (shared.integrations.retell.auth).
    return await authenticate(
        session, raw, signature, platform_key=request.app.state.settings.retell_api_key, **kw
    )


async def _rate_limit(request: Request, company_id: str, caller: str | None) -> None:
    if caller is None:
        return
    limiter: RateLimiter = request.app.state.limiter
    try:
        await enforce(
            limiter,
            limiter.key(caller_bucket(company_id, caller)),
            request.app.state.rate_limits.per_number_per_minute,
        )
    except RateLimited as error:
        error.extra["message"] = speech.rate_limited()
        raise


_PROBLEM = {"application/problem+json": {"schema": {"type": "object"}}}
_FUNCTION_DESCRIPTION = (
    "Retell calls this URL with the function's arguments (each function's args model is one "
    "form of the body; `GET /v1/retell/functions` gives the definitions to paste). Answers 200 "
    "with the outcome in `status`: the function's answer, or a refusal the agent reads out."
)
_FUNCTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": FunctionAnswer, "description": "The function's answer or a refusal"},
    400: {"content": _PROBLEM, "description": "`function_name_mismatch`"},
    401: {"content": _PROBLEM, "description": "`retell_signature_invalid`"},
    404: {"content": _PROBLEM, "description": "`unknown_function` or `retell_number_unknown`"},
}


@router.get(
    "/functions",
    summary="The agent's functions in Retell's custom-function format",
    response_model=RetellFunctionsOut,
)
async def list_functions(request: Request, principal: ReaderPrincipal) -> RetellFunctionsOut:
    """One definition per function (paste each into the Retell agent's tools); `url` is this
    deployment's address as the request reached it (docs/retell-integration.md)."""
    return RetellFunctionsOut(items=definitions(str(request.base_url)))


def _refused(error: SignatureRefused | RetellNumberUnknown, name: str | None) -> None:
    """One log line per refused Retell request: the reason, never a key or a digest."""
    log.warning(
        "Retell request refused: %s",
        error.reason,
        extra={"code": error.code, "reason": error.reason, "function": (name or "")[:100]},
    )


@router.post(
    "/functions/{name}",
    summary="A Retell custom function call",
    description=_FUNCTION_DESCRIPTION,
    responses=_FUNCTION_RESPONSES,
    openapi_extra={"requestBody": request_body()},
)
async def function_call(
    request: Request,
    attempt: AgentBookingAttempt,  # first: it sees errors after the session rolled back
    notices: QuotaNotices,  # likewise
    session: Session,
    name: str,
    signature: Signature = None,
    company_id: Annotated[
        str | None,
        Query(
            max_length=36,
            description="Args-only mode: the company whose own Retell key signs the call "
            "(never steers a platform-key signature)",
        ),
    ] = None,
) -> JSONResponse:
    raw = await _raw_body(request)
    try:
        verified = await _caller(
            request, session, raw, signature, company_hint=company_id, known_tenant=True
        )
    except (SignatureRefused, RetellNumberUnknown) as error:
        _refused(error, name)
        raise
    if verified.company_id is None:
        raise AgentAnswer(200, _needs_callback())
    require_signed_name(verified.payload, name)  # a signed body cannot be replayed elsewhere
    function = FUNCTIONS.get(name)
    if function is None:
        shown = name[:100]
        log.warning("Retell function unknown: %s", shown, extra={"function": shown})
        raise UnknownFunction(
            f"There is no agent function {shown!r}; the functions are: {', '.join(FUNCTIONS)}. "
            "Check the tool's URL in the Retell agent (GET /v1/retell/functions lists them).",
            function=shown,
            known=list(FUNCTIONS),
        )
    bind_tenant(session, verified.company_id)
    request.state.company_id = verified.company_id
    payload = verified.payload
    wrapped = isinstance(payload.get("args"), dict) and isinstance(payload.get("call"), dict)
    args: dict[str, Any] = payload["args"] if wrapped else payload
    call_id = (
        verified.call.get("call_id") if isinstance(verified.call.get("call_id"), str) else None
    )
    if call_id:
        correlation_id_var.set(call_id)
    if name == "book_appointment":
        attempt.arm(call_id=call_id)
    call = AgentCall(
        company_id=verified.company_id,
        branch_id=verified.branch_id,
        call_id=call_id,
        caller=e164(verified.call.get("from_number")),
        name=name,
        args=args,
        policy=request.app.state.policy,
        now=utcnow(),
        tries=tries_guard(request.app.state),
    )
    await _rate_limit(request, call.company_id, call.rate_limit_number())
    key = None
    fingerprint = idempotency.fingerprint(args)
    if name in MUTATING and call_id:
        key = idempotency.agent_key(call_id, name, args)
        earlier = await idempotency.claim(session, key, fingerprint)
        if earlier is not None:
            raise idempotency.replay_or_refuse(earlier, fingerprint)
    try:
        answer = (await function(session, call)).model_dump()
    except (Refusal, AppError) as error:
        refusal = refusal_for(error, name).answer
        raise AgentAnswer(200, refusal.model_dump(exclude_none=True)) from error
    if key is not None:
        await idempotency.complete(session, key, 200, answer)
    return JSONResponse(answer)


@router.post("/inbound", summary="Retell's call_inbound webhook: greet a returning caller")
async def inbound_call(
    request: Request, session: Session, signature: Signature = None
) -> JSONResponse:
    raw = await _raw_body(request)
    verified = await _caller(request, session, raw, signature, call_key="call_inbound")
    variables = CallerVariables()
    if verified.company_id is not None:
        bind_tenant(session, verified.company_id)
        variables = await greeting(session, verified)
    return JSONResponse(_inbound(variables).model_dump())
