"""The lean handlers of `POST /v1/policies/evaluate` and `GET /v1/policies/effective`.

Both are what booking and the agent ask on their hot paths, so their well-formed case with a
warm key skips FastAPI's machinery (shared/web/lean.py, ADR 0009). They call the same use cases
(services/policy/service.py) as the FastAPI routes, reading through the raw pool on MariaDB,
and answer the same JSON; anything unusual (a body or query the models refuse, an uncached
key, a key without the scope) is deferred to those routes before the rate-limit hit, so each
refusal has one implementation.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.responses import Response

from services.policy import service
from services.policy.schemas import EvaluateIn, PolicyType
from shared.fields import Id
from shared.hierarchy.reads import reading
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
    limit = KeyLimit(state, principal.key_id)  # counted by the evaluation, once
    async with reading(state.db, principal.company_id) as reads:
        answer = await service.evaluate(
            reads, state.policy_cache, principal.company_id, body, limit
        )
    return _json(answer)


def _json(answer: BaseModel) -> Response:
    """The answer as the FastAPI route's response model serializes it."""
    return Response(answer.model_dump_json(), media_type="application/json")


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
    async with reading(state.db, principal.company_id) as reads:
        answer = await service.effective(
            reads,
            state.policy_cache,
            principal.company_id,
            query.policy_type,
            branch_id=query.branch_id,
            service_id=query.service_id,
            staff_id=query.staff_id,
        )
    return _json(answer)


HANDLERS: dict[tuple[str, str], Handler] = {
    ("POST", "/v1/policies/evaluate"): evaluate,
    ("GET", "/v1/policies/effective"): effective,
}
