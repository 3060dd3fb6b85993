"""Policy REST API: per-level configs, the effective config, and evaluation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response

from services.policy import service
from services.policy.schemas import (
    OPERATOR_EXAMPLE,
    SHORTHAND_EXAMPLE,
    EffectiveOut,
    EvaluateIn,
    EvaluationOut,
    Level,
    PolicyConfigIn,
    PolicyOut,
    PolicyType,
)
from shared.errors import Forbidden
from shared.fields import Id
from shared.hierarchy.cache import ConfigCache
from shared.web.auth import AdminPrincipal, Principal, authenticate
from shared.web.deps import READ_ONLY, Session

router = APIRouter(prefix="/v1/policies", tags=["policies"])

EntityId = Annotated[str, Path(min_length=1, max_length=36)]
ConfigBody = Annotated[
    PolicyConfigIn,
    Body(
        description="The level's config (every key optional; absent keys are inherited)",
        openapi_examples={
            "tiers": {
                "summary": "Free from 48 h, 10 EUR from 24 h, 20 EUR below",
                "value": OPERATOR_EXAMPLE,
            },
            "shorthand": {
                "summary": "The seeds' shorthand: free from 24 h, 10 EUR after",
                "description": "Stored as allow_late true with one tier "
                '{"min_hours_before": "0", "fee": "10.00"}',
                "value": SHORTHAND_EXAMPLE,
            },
            "staff": {
                "summary": "Staff level: preferences only",
                "value": {"notify_staff": True, "staff_note": "Bitte 5 Minuten Puffer"},
            },
        },
    ),
]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "not_found"}}
INVALID: dict[int | str, dict[str, Any]] = {422: {"description": "validation_error"}}


async def _operator_or_service(
    principal: Annotated[Principal, Depends(authenticate)],
) -> Principal:
    if not (principal.has("operator") or principal.has("service")):
        raise Forbidden("This API key needs the 'operator' or 'service' scope.")
    return principal


Reader = Annotated[Principal, Depends(_operator_or_service)]


async def get_cache(request: Request) -> ConfigCache:
    # async: a plain `def` dependency would run in the threadpool, a thread hop per request.
    cache: ConfigCache = request.app.state.policy_cache
    return cache


Cache = Annotated[ConfigCache, Depends(get_cache)]


@router.get("/effective", response_model=EffectiveOut, responses={**NOT_FOUND, **INVALID})
async def get_effective(
    principal: Reader,
    session: Session,
    cache: Cache,
    policy_type: Annotated[PolicyType, Query()],
    staff_id: Annotated[Id | None, Query()] = None,
    service_id: Annotated[Id | None, Query()] = None,
    branch_id: Annotated[Id | None, Query()] = None,
) -> EffectiveOut:
    """The levels merged from company down to the most specific, with each key's level."""
    return await service.effective(
        session,
        cache,
        principal.company_id,
        policy_type,
        branch_id=branch_id,
        service_id=service_id,
        staff_id=staff_id,
    )


@router.post(
    "/evaluate",
    response_model=EvaluationOut,
    responses={**NOT_FOUND, **INVALID},
    openapi_extra=READ_ONLY,
)
async def evaluate(
    principal: Reader, session: Session, cache: Cache, body: EvaluateIn
) -> EvaluationOut:
    """May the appointment be cancelled/rescheduled at `at` (default now), at what fee.

    Give `appointment_id`, or the what-if form `service_id` + `start` (with `staff_id`,
    `branch_id`, `customer_phone` optional) for a hypothetical confirmed appointment.
    """
    return await service.evaluate(session, cache, principal.company_id, body)


@router.put(
    "/{level}/{entity_id}/{policy_type}",
    response_model=PolicyOut,
    responses={201: {"description": "created"}, **NOT_FOUND, **INVALID},
)
async def put_policy(
    principal: AdminPrincipal,
    session: Session,
    cache: Cache,
    response: Response,
    level: Level,
    entity_id: EntityId,
    policy_type: PolicyType,
    config: ConfigBody,
) -> PolicyOut:
    """Set one level's config (validated, stored canonical); every change is audited.

    `hours_before` is the free-change deadline: a change at or before it is free; after it
    `allow_late` decides, and the fee tier for the remaining hours applies. The shorthand
    `{"hours_before": 24, "fee": 10}` is stored as allow_late + one tier; tiers are sorted.
    """
    answer, created = await service.put_policy(
        session,
        cache,
        company_id=principal.company_id,
        level=level,
        entity_id=entity_id,
        policy_type=policy_type,
        config=config,
        changed_by=principal.key_id,
    )
    response.status_code = 201 if created else 200
    return answer


@router.get("/{level}/{entity_id}/{policy_type}", response_model=PolicyOut, responses=NOT_FOUND)
async def get_policy(
    principal: Reader,
    session: Session,
    level: Level,
    entity_id: EntityId,
    policy_type: PolicyType,
) -> PolicyOut:
    """The stored config of one level (not merged)."""
    return await service.get_policy(session, level, entity_id, policy_type)


@router.delete("/{level}/{entity_id}/{policy_type}", status_code=204, responses=NOT_FOUND)
async def delete_policy(
    principal: AdminPrincipal,
    session: Session,
    cache: Cache,
    level: Level,
    entity_id: EntityId,
    policy_type: PolicyType,
) -> Response:
    """Remove one level's config (the levels above apply again); audited with after = null."""
    await service.delete_policy(
        session,
        cache,
        company_id=principal.company_id,
        level=level,
        entity_id=entity_id,
        policy_type=policy_type,
        changed_by=principal.key_id,
    )
    return Response(status_code=204)
