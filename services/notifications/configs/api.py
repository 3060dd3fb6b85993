"""REST API of notification configs (per level, effective)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from services.notifications.configs import service
from services.notifications.configs.schemas import (
    ConfigBody,
    ConfigListOut,
    ConfigOut,
    EffectiveOut,
)
from shared.fields import Id
from shared.hierarchy.cache import ConfigCache
from shared.web.auth import AdminPrincipal, ReaderPrincipal
from shared.web.deps import Session

router = APIRouter(prefix="/v1/notification-configs", tags=["notification configs"])

EntityId = Annotated[str, Path(min_length=1, max_length=36)]
Segment = Annotated[str, Path(min_length=1, max_length=64)]
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "not_found"},
    422: {"description": "validation_error"},
}


async def get_cache(request: Request) -> ConfigCache:
    cache: ConfigCache = request.app.state.notification_cache
    return cache


Cache = Annotated[ConfigCache, Depends(get_cache)]


@router.get("/effective", response_model=EffectiveOut, responses=ERRORS)
async def get_effective(
    principal: ReaderPrincipal,
    session: Session,
    cache: Cache,
    event_type: Annotated[str, Query(max_length=64)],
    channel: Annotated[str, Query(max_length=16)],
    staff_id: Annotated[Id | None, Query()] = None,
    service_id: Annotated[Id | None, Query()] = None,
    branch_id: Annotated[Id | None, Query()] = None,
) -> EffectiveOut:
    """The levels merged from company down to the most specific target, with provenance."""
    return await service.effective(
        session,
        cache,
        principal.company_id,
        event_type,
        channel,
        branch_id=branch_id,
        service_id=service_id,
        staff_id=staff_id,
    )


@router.get("", response_model=ConfigListOut)
async def list_configs(
    principal: ReaderPrincipal,
    session: Session,
    level: Annotated[Literal["company", "branch", "service", "staff"] | None, Query()] = None,
    entity_id: Annotated[str | None, Query(min_length=1, max_length=36)] = None,
) -> ConfigListOut:
    """Every stored config of the company (optionally of one level or entity), not merged."""
    return await service.list_configs(session, level=level, entity_id=entity_id)


@router.put(
    "/{level}/{entity_id}/{event_type}/{channel}",
    response_model=ConfigOut,
    responses={201: {"description": "created"}, **ERRORS},
)
async def put_config(
    principal: AdminPrincipal,
    session: Session,
    cache: Cache,
    response: Response,
    level: Segment,
    entity_id: EntityId,
    event_type: Segment,
    channel: Segment,
    config: ConfigBody,
) -> ConfigOut:
    """Set one level's config for one event and channel (validated, normalized, audited)."""
    stored, created = await service.put_config(
        session,
        cache,
        company_id=principal.company_id,
        level=level,
        entity_id=entity_id,
        event_type=event_type,
        channel=channel,
        config=config,
        changed_by=principal.key_id,
    )
    response.status_code = 201 if created else 200
    return stored


@router.get(
    "/{level}/{entity_id}/{event_type}/{channel}", response_model=ConfigOut, responses=ERRORS
)
async def get_config(
    principal: ReaderPrincipal,
    session: Session,
    level: Segment,
    entity_id: EntityId,
    event_type: Segment,
    channel: Segment,
) -> ConfigOut:
    """The stored config of one level (not merged)."""
    return await service.get_config(session, level, entity_id, event_type, channel)


@router.delete("/{level}/{entity_id}/{event_type}/{channel}", status_code=204, responses=ERRORS)
async def delete_config(
    principal: AdminPrincipal,
    session: Session,
    cache: Cache,
    level: Segment,
    entity_id: EntityId,
    event_type: Segment,
    channel: Segment,
) -> Response:
    """Remove one level's config (the levels above apply again); audited."""
    await service.delete_config(
        session,
        cache,
        company_id=principal.company_id,
        level=level,
        entity_id=entity_id,
        event_type=event_type,
        channel=channel,
        changed_by=principal.key_id,
    )
    return Response(status_code=204)
