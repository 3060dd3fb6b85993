"""Template REST API: a company's own texts per event x channel x language, and previews."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from services.notifications import template_store as store
from services.notifications.template_budget import in_thread
from services.notifications.template_schemas import (
    Channel,
    EventType,
    Language,
    PreviewIn,
    PreviewOut,
    TemplateIn,
    TemplateOut,
)
from services.notifications.templates import render, sample_raw, validate_template
from shared.errors import Forbidden, InvalidInput, NotFound
from shared.models import NotificationTemplate
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


def _check_subject(channel: str, subject: str | None) -> None:
    if subject is not None and channel != "email":
        raise InvalidInput(f"A {channel} message has no subject.", field="subject")


def _template_json(
    row: NotificationTemplate | None, event_type: str, channel: str, language: str
) -> dict[str, Any]:
    subject, body, source = store.effective_of(row, event_type, channel, language)
    return {
        "event_type": event_type,
        "channel": channel,
        "language": language,
        "subject": subject,
        "body": body,
        "source": source,
        "updated_at": None if row is None else row.updated_at.isoformat(),
        "updated_by": None if row is None else row.updated_by,
    }


@router.get("/{event_type}/{channel}/{language}", response_model=TemplateOut, responses=INVALID)
async def get_template(
    principal: Reader,
    session: Session,
    event_type: EventType,
    channel: Channel,
    language: Language,
) -> dict[str, Any]:
    """The company's template, else the built-in one (`source` says which)."""
    row = await store.get_template(session, event_type, channel, language)
    return _template_json(row, event_type, channel, language)


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
) -> dict[str, Any]:
    """Set the company's template (validated now, so sending cannot fail on it later)."""
    _check_subject(channel, payload.subject)
    # Off the event loop: the render budget, not the loop, bounds a hostile template.
    await in_thread(validate_template, event_type, payload.body, payload.subject)
    row, created = await store.put_template(
        session,
        event_type=event_type,
        channel=channel,
        language=language,
        subject=payload.subject,
        body=payload.body,
        updated_by=principal.key_id,
    )
    response.status_code = 201 if created else 200
    return _template_json(row, event_type, channel, language)


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
    if not await store.delete_template(session, event_type, channel, language):
        raise NotFound("The company has no own template for this event, channel and language.")
    return Response(status_code=204)


@router.post("/preview", response_model=PreviewOut, responses=INVALID, openapi_extra=READ_ONLY)
async def preview(principal: Reader, session: Session, payload: PreviewIn) -> dict[str, Any]:
    """Render with sample data (a salon in Berlin, 24 November 2026, 14:30)."""
    _check_subject(payload.channel, payload.subject)
    row = None
    if payload.body is None or (payload.subject is None and payload.channel == "email"):
        row = await store.get_template(
            session, payload.event_type, payload.channel, payload.language
        )
    stored_subject, stored_body, _ = store.effective_of(
        row, payload.event_type, payload.channel, payload.language
    )
    body = stored_body if payload.body is None else payload.body
    subject = stored_subject if payload.subject is None else payload.subject
    await in_thread(validate_template, payload.event_type, body, subject)
    message = await in_thread(
        render,
        payload.event_type,
        payload.channel,
        payload.language,
        sample_raw(payload.event_type, payload.language),
        body=body,
        subject=subject,
    )
    return {"subject": message.subject, "body": message.body}
