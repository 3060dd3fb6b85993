"""REST API of the event catalogue and of notification configs (per level, effective)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from services.notifications import config_store
from services.notifications.config_schema import check_scope, validate_config
from services.notifications.template_budget import in_thread
from shared.errors import NotFound
from shared.fields import Id
from shared.hierarchy import ConfigCache, check_entity
from shared.models import NotificationConfiguration, NotificationEventMapping
from shared.web.auth import AdminPrincipal, ReaderPrincipal
from shared.web.deps import Session

events_router = APIRouter(prefix="/v1/notification-events", tags=["notification events"])
router = APIRouter(prefix="/v1/notification-configs", tags=["notification configs"])

EntityId = Annotated[str, Path(min_length=1, max_length=36)]
Segment = Annotated[str, Path(min_length=1, max_length=64)]
ConfigBody = Annotated[
    dict[str, Any],
    Body(
        description='The level\'s keys, e.g. {"enabled": false} or {"recipients": ["customer", '
        '{"address": "frontdesk@example.com"}]}; staff may set only notify_staff and language.'
    ),
]
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "not_found"},
    422: {"description": "validation_error"},
}


class EventTypeOut(BaseModel):
    event_type: str
    label_de: str
    label_en: str
    category: str
    default_channels: list[str]


class EventTypesOut(BaseModel):
    events: list[EventTypeOut]


class ConfigOut(BaseModel):
    level: str
    entity_id: str
    event_type: str
    channel: str
    config: dict[str, Any]
    updated_at: str


class ConfigListOut(BaseModel):
    configs: list[ConfigOut]


class EffectiveOut(BaseModel):
    event_type: str
    channel: str
    config: dict[str, Any]
    sources: dict[str, str] = Field(description="The level each key came from (or 'default')")
    chain: dict[str, str | None]


async def get_cache(request: Request) -> ConfigCache:
    cache: ConfigCache = request.app.state.notification_cache
    return cache


Cache = Annotated[ConfigCache, Depends(get_cache)]


@events_router.get("", response_model=EventTypesOut)
async def list_event_types(principal: ReaderPrincipal, session: Session) -> dict[str, Any]:
    """The 13 event types, with German and English labels and default channels."""
    rows = await session.scalars(
        sa.select(NotificationEventMapping)
        .where(NotificationEventMapping.is_active.is_(True))
        .order_by(NotificationEventMapping.event_category, NotificationEventMapping.event_type)
    )
    return {
        "events": [
            {
                "event_type": row.event_type,
                "label_de": row.event_label,
                "label_en": row.event_label_en,
                "category": row.event_category,
                "default_channels": list(row.default_channels),
            }
            for row in rows
        ]
    }


def _config_json(row: NotificationConfiguration) -> dict[str, Any]:
    return {
        "level": row.level,
        "entity_id": row.entity_id,
        "event_type": row.event_type,
        "channel": row.channel,
        "config": row.config or {},
        "updated_at": row.updated_at.isoformat(),
    }


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
) -> dict[str, Any]:
    """The levels merged from company down to the most specific target, with provenance."""
    check_scope("company", event_type, channel)
    chain, result = await config_store.resolve_effective_config(
        session,
        cache,
        principal.company_id,
        event_type,
        channel,
        branch_id=branch_id,
        service_id=service_id,
        staff_id=staff_id,
    )
    return {
        "event_type": event_type,
        "channel": channel,
        "config": result["config"],
        "sources": result["sources"],
        "chain": {
            "company_id": chain.company_id,
            "branch_id": chain.branch_id,
            "service_id": chain.service_id,
            "staff_id": chain.staff_id,
        },
    }


@router.get("", response_model=ConfigListOut)
async def list_configs(
    principal: ReaderPrincipal,
    session: Session,
    level: Annotated[Literal["company", "branch", "service", "staff"] | None, Query()] = None,
    entity_id: Annotated[str | None, Query(min_length=1, max_length=36)] = None,
) -> dict[str, Any]:
    """Every stored config of the company (optionally of one level or entity), not merged."""
    rows = await config_store.list_configs(session, level=level, entity_id=entity_id)
    return {"configs": [_config_json(row) for row in rows]}


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
) -> dict[str, Any]:
    """Set one level's config for one event and channel (validated, normalized, audited)."""
    # Off the event loop: a template_override is trial-rendered under its budget (ADR 0013).
    normalized = await in_thread(validate_config, level, event_type, channel, config)
    await check_entity(session, principal.company_id, level, entity_id)
    row, created = await config_store.put_config(
        session,
        cache,
        company_id=principal.company_id,
        level=level,
        entity_id=entity_id,
        event_type=event_type,
        channel=channel,
        config=normalized,
        changed_by=principal.key_id,
    )
    response.status_code = 201 if created else 200
    return _config_json(row)


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
) -> dict[str, Any]:
    """The stored config of one level (not merged)."""
    check_scope(level, event_type, channel)
    row = await config_store.get_config(session, level, entity_id, event_type, channel)
    if row is None:
        raise NotFound("No notification config is set at this level.")
    return _config_json(row)


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
    check_scope(level, event_type, channel)
    deleted = await config_store.delete_config(
        session,
        cache,
        company_id=principal.company_id,
        level=level,
        entity_id=entity_id,
        event_type=event_type,
        channel=channel,
        changed_by=principal.key_id,
    )
    if not deleted:
        raise NotFound("No notification config is set at this level.")
    return Response(status_code=204)
