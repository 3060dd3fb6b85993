"""Template REST API: a company's own texts per event x channel x language, and previews."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from services.notifications.templates import service
from services.notifications.templates.schemas import (
    Channel,
    EventType,
    Language,
    PreviewIn,
    PreviewOut,
    TemplateIn,
    TemplateOut,
)
from shared.errors import Forbidden
from shared.web.auth import AdminPrincipal, Principal, authenticate
from shared.web.deps import READ_ONLY, Session

router = APIRouter(prefix="/v1/notification-templates", tags=["templates"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "not_found"}}
INVALID: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "validation_error (a template error names its field and line); "
        "template_budget_exceeded (its loops, output or render time exceed the budget)"
    }
}


async def _operator_or_service(
    principal: Annotated[Principal, Depends(authenticate)],
) -> Principal:
    if not (principal.has("operator") or principal.has("service")):
        raise Forbidden("This API key needs the 'operator' or 'service' scope.")
    return principal


Reader = Annotated[Principal, Depends(_operator_or_service)]


@router.get("/{event_type}/{channel}/{language}", response_model=TemplateOut, responses=INVALID)
async def get_template(
    principal: Reader,
    session: Session,
    event_type: EventType,
    channel: Channel,
    language: Language,
) -> TemplateOut:
    """The company's template, else the built-in one (`source` says which)."""
    return await service.get_template(session, event_type, channel, language)


@router.put(
    "/{event_type}/{channel}/{language}",
    response_model=TemplateOut,
    responses={201: {"description": "created"}, **INVALID},
)
async def put_template(
    principal: AdminPrincipal,
    session: Session,
    response: Response,
    event_type: EventType,
    channel: Channel,
    language: Language,
    payload: TemplateIn,
) -> TemplateOut:
    """Set the company's template (validated now, so sending cannot fail on it later)."""
    template, created = await service.put_template(
        session,
        event_type=event_type,
        channel=channel,
        language=language,
        subject=payload.subject,
        body=payload.body,
        updated_by=principal.key_id,
    )
    response.status_code = 201 if created else 200
    return template


@router.delete(
    "/{event_type}/{channel}/{language}", status_code=204, responses={**NOT_FOUND, **INVALID}
)
async def delete_template(
    principal: AdminPrincipal,
    session: Session,
    event_type: EventType,
    channel: Channel,
    language: Language,
) -> Response:
    """Remove the company's template: the built-in one applies again."""
    await service.delete_template(session, event_type, channel, language)
    return Response(status_code=204)


@router.post("/preview", response_model=PreviewOut, responses=INVALID, openapi_extra=READ_ONLY)
async def preview(principal: Reader, session: Session, payload: PreviewIn) -> PreviewOut:
    """Render with sample data (a salon in Berlin, 24 November 2026, 14:30)."""
    return await service.preview(session, payload)
