"""Tenant administration REST API (/v1/admin/...): routers only, the rules live in `admin/`.

Every route needs the admin scope and acts on the caller's company (a platform key names it
in X-Company-ID); another company's ids answer 404, references to them 422.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field, create_model

from services.booking.admin import crud
from services.booking.admin.access import api_keys, calcom, platform_keys
from services.booking.admin.access.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyOut,
    ApiKeyUpdate,
    CalcomIntegrationIn,
    CalcomIntegrationOut,
    PlatformKeyList,
    PlatformKeyOut,
)
from services.booking.admin.paging import MAX_LIMIT
from services.booking.admin.resources import RESOURCES
from services.booking.admin.schemas import Filters, Input
from shared.web.auth import AdminPrincipal, PlatformAdmin
from shared.web.deps import Session

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid API key (problem+json)"},
    403: {
        "description": "The key lacks the admin scope, or a company key sets a phone number "
        "or Retell agent (problem+json, code platform_key_required)"
    },
    404: {"description": "No such resource in the caller's company (problem+json)"},
    409: {"description": "Duplicate, or still in use (problem+json, code conflict)"},
    422: {"description": "Invalid input; `field` names the culprit (problem+json)"},
}
router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=_PROBLEMS)


def _list_model(out: type[BaseModel]) -> type[BaseModel]:
    """`{"items": [out, ...], "next_cursor"}` as a named model (one schema per resource)."""
    generic_list: Any = list  # subscripted with a runtime class, which mypy cannot follow
    next_cursor: Any = (
        str | None,
        Field(description="Pass as `cursor` for the next page; null on the last page"),
    )
    return create_model(
        out.__name__.removesuffix("Out") + "List",
        items=(generic_list[out], ...),
        next_cursor=next_cursor,
    )


def crud_router(resource: crud.Resource) -> APIRouter:
    """GET list, POST, GET/PATCH/DELETE /{id} for one resource.

    The endpoints are shared code; FastAPI learns each resource's body and query models from
    the annotations set below, so validation and the OpenAPI schema stay per resource.
    """
    sub = APIRouter(prefix=resource.path)
    name = resource.path.strip("/").replace("-", "_")
    items = _list_model(resource.out)

    async def list_items(
        session: Session,
        _: AdminPrincipal,
        filters: Filters,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 200,
        cursor: Annotated[str | None, Query(max_length=2000)] = None,
    ) -> Any:
        page = await crud.list_rows(session, resource, filters, limit=limit, cursor=cursor)
        shown = await crud.present(session, resource, page.rows)
        return {"items": shown, "next_cursor": page.next_cursor}

    async def create(session: Session, principal: AdminPrincipal, body: Input) -> Any:
        row = await crud.create(session, resource, body, platform=principal.platform)
        return (await crud.present(session, resource, [row]))[0]

    async def read(session: Session, _: AdminPrincipal, id: str) -> Any:
        row = await crud.get_or_404(session, resource, id)
        return (await crud.present(session, resource, [row]))[0]

    async def update(session: Session, principal: AdminPrincipal, id: str, body: Input) -> Any:
        row = await crud.update(session, resource, id, body, platform=principal.platform)
        return (await crud.present(session, resource, [row]))[0]

    async def delete(session: Session, _: AdminPrincipal, id: str) -> None:
        await crud.delete(session, resource, id)

    list_items.__annotations__["filters"] = Annotated[resource.filters, Query()]
    create.__annotations__["body"] = resource.create
    update.__annotations__["body"] = resource.update

    out = resource.out
    sub.add_api_route("", list_items, methods=["GET"], response_model=items, name=f"list_{name}")
    sub.add_api_route(
        "", create, methods=["POST"], response_model=out, status_code=201, name=f"create_{name}"
    )
    sub.add_api_route("/{id}", read, methods=["GET"], response_model=out, name=f"get_{name}")
    sub.add_api_route("/{id}", update, methods=["PATCH"], response_model=out, name=f"update_{name}")
    sub.add_api_route(
        "/{id}",
        delete,
        methods=["DELETE"],
        name=f"delete_{name}",
        status_code=204,
        response_class=Response,
    )
    return sub


for _resource in RESOURCES:
    router.include_router(crud_router(_resource))


# Platform keys (a platform admin key; company keys 403): GET list, DELETE /{id} revokes.

_PLATFORM_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid API key (problem+json)"},
    403: {"description": "Not a platform key, or without the admin scope (problem+json)"},
    404: {"description": "No such platform key (problem+json)"},
}
platform_router = APIRouter(prefix="/platform-keys", responses=_PLATFORM_PROBLEMS)


@platform_router.get("", response_model=PlatformKeyList)
async def list_keys(session: Session, _: PlatformAdmin) -> PlatformKeyList:
    """Every platform key, revoked ones included (newest first)."""
    keys = await platform_keys.list_platform_keys(session)
    return PlatformKeyList(items=[PlatformKeyOut.model_validate(key) for key in keys])


@platform_router.delete("/{id}", status_code=204, response_class=Response)
async def revoke_key(session: Session, _: PlatformAdmin, id: str) -> None:
    """Revoke a platform key: refused by every replica within a second; stays listed."""
    await platform_keys.revoke_platform_key(session, id)


router.include_router(platform_router)


# API keys ------------------------------------------------------------------------------


@router.get("/api-keys", response_model=ApiKeyList)
async def list_api_keys(session: Session, principal: AdminPrincipal) -> ApiKeyList:
    keys = await api_keys.list_keys(session, principal.company_id)
    return ApiKeyList(items=[ApiKeyOut.model_validate(key) for key in keys])


@router.post("/api-keys", response_model=ApiKeyCreated, status_code=201)
async def create_api_key(
    session: Session, principal: AdminPrincipal, body: ApiKeyCreate
) -> ApiKeyCreated:
    """Issue a key; the answer's `key` is the only time the plaintext is ever shown."""
    issued = await api_keys.create_key(session, principal.company_id, body)
    shown = ApiKeyOut.model_validate(issued.key).model_dump()
    return ApiKeyCreated(**shown, key=issued.plaintext)


@router.get("/api-keys/{id}", response_model=ApiKeyOut)
async def get_api_key(session: Session, principal: AdminPrincipal, id: str) -> ApiKeyOut:
    return ApiKeyOut.model_validate(await api_keys.get_key(session, principal.company_id, id))


@router.patch("/api-keys/{id}", response_model=ApiKeyOut)
async def update_api_key(
    session: Session, principal: AdminPrincipal, id: str, body: ApiKeyUpdate
) -> ApiKeyOut:
    key = await api_keys.update_key(session, principal.company_id, id, body)
    return ApiKeyOut.model_validate(key)


@router.delete("/api-keys/{id}", status_code=204, response_class=Response)
async def revoke_api_key(session: Session, principal: AdminPrincipal, id: str) -> None:
    """Revoke the key: it answers 401 from now on; it stays listed with `revoked_at`."""
    await api_keys.revoke_key(session, principal.company_id, id)


# Cal.com integration -------------------------------------------------------------------


@router.get("/integrations/calcom", response_model=CalcomIntegrationOut)
async def get_calcom(session: Session, principal: AdminPrincipal) -> CalcomIntegrationOut:
    return await calcom.get_integration(session, principal.company_id)


@router.put("/integrations/calcom", response_model=CalcomIntegrationOut)
async def put_calcom(
    request: Request, session: Session, principal: AdminPrincipal, body: CalcomIntegrationIn
) -> CalcomIntegrationOut:
    """Connect the company to Cal.com: bookings are mirrored there from now on.

    `base_url` must be https on OUTBOUND_ALLOWED_HOSTS without credentials or a private IP
    (else 422 `outbound_url_refused`, nothing stored)."""
    return await calcom.put_integration(
        session, principal.company_id, body, request.app.state.settings
    )


@router.delete("/integrations/calcom", status_code=204, response_class=Response)
async def delete_calcom(session: Session, principal: AdminPrincipal) -> None:
    """Disconnect Cal.com: the company goes back to the local calendar."""
    await calcom.delete_integration(session, principal.company_id)
