"""The lean handlers of `POST /v1/policies/evaluate` and `GET /v1/policies/effective`.

Both are what booking and the agent ask on their hot paths, so their warm, well-formed case
skips FastAPI's machinery (shared/web/lean.py, ADR 0009). They call the same service code as the
FastAPI routes in services/policy/api.py and answer the same JSON; anything unusual (a body
or query the models refuse, an uncached key, a key without the scope) is deferred to those
routes before the rate-limit hit, so each refusal has one implementation.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.responses import JSONResponse, Response

from services.policy import evaluate_service, store
from services.policy.api import effective_answer, effective_body
from services.policy.schemas import EvaluateIn, PolicyType
from shared.fields import Id
from shared.web.auth import KeyLimit, Principal, cached_principal, enforce_key_limit
from shared.web.lean import Handler, LeanRequest

_READER_SCOPES = ("operator", "service")


class EffectiveQuery(BaseModel):
    """The query of `GET /v1/policies/effective` (the route's own parameters, as a model)."""

    model_config = ConfigDict(extra="ignore")

    policy_type: PolicyType
    staff_id: Id | None = None
    service_id: Id | None = None
    branch_id: Id | None = None


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json"


def _principal(request: LeanRequest) -> Principal | None:
    """The caller when warm and allowed; its company noted as the auth dependency does."""
    state = request.app.state
    principal = cached_principal(request.headers, state.settings.auth_cache_ttl_s, *_READER_SCOPES)
    if principal is not None:
        request.scope.setdefault("state", {})["company_id"] = principal.company_id
    return principal


async def _reader(request: LeanRequest) -> Principal | None:
    """`_principal`, its request counted against its rate limit."""
    principal = _principal(request)
    if principal is not None:
        await enforce_key_limit(request.app.state, principal.key_id)
    return principal


async def evaluate(request: LeanRequest) -> Response | None:
    if not _is_json(request.headers.get("content-type")):
        return None
    try:  # as FastAPI reads a body: json.loads, then the model in Python mode
        body = EvaluateIn.model_validate(json.loads(request.body))
    except Exception:  # not JSON, too deeply nested, not the model: the full route answers
        return None
    principal = _principal(request)
    if principal is None:
        return None
    state = request.app.state
    company_id = principal.company_id
    limit = KeyLimit(state, principal.key_id)
    answer = None
    if state.db.raw is not None and evaluate_service.answers_warm(body):
        # MariaDB: autocommit reads; the rate-limit hit rides with the config cache read.
        answer = await evaluate_service.evaluate_warm(
            state.db.raw, state.policy_cache, company_id, body, limit
        )
    else:
        await limit.hit()
    if answer is None:  # not warm: the ordinary evaluation in a session (hit already counted)
        async with state.db.transaction(company_id, write=False) as session:
            answer = await evaluate_service.evaluate(session, state.policy_cache, company_id, body)
    return JSONResponse(answer)


def _query(raw: bytes) -> EffectiveQuery | None:
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    values: dict[str, Any] = {}
    for name, value in pairs:
        if name in values:  # a repeated parameter: the full route decides which one counts
            return None
        values[name] = value
    try:
        return EffectiveQuery.model_validate(values)
    except ValidationError:
        return None


async def effective(request: LeanRequest) -> Response | None:
    query = _query(request.query)
    if query is None:
        return None
    principal = await _reader(request)
    if principal is None:
        return None
    state = request.app.state
    if state.db.raw is not None:  # MariaDB: autocommit reads when warm
        ids = {
            "branch_id": query.branch_id,
            "service_id": query.service_id,
            "staff_id": query.staff_id,
        }
        found = await store.resolve_effective_config_warm(
            state.db.raw, state.policy_cache, principal.company_id, query.policy_type, ids
        )
        if found is not None:
            return JSONResponse(effective_body(query.policy_type, *found))
    async with state.db.transaction(principal.company_id, write=False) as session:
        answer = await effective_answer(
            session,
            state.policy_cache,
            principal.company_id,
            query.policy_type,
            branch_id=query.branch_id,
            service_id=query.service_id,
            staff_id=query.staff_id,
        )
    return JSONResponse(answer)


HANDLERS: dict[tuple[str, str], Handler] = {
    ("POST", "/v1/policies/evaluate"): evaluate,
    ("GET", "/v1/policies/effective"): effective,
}
