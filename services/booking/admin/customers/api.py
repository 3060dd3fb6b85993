"""Customer data under data-protection law (DSGVO): export and erasure, admin scope.

`GET /v1/admin/customers/{id}/export` answers everything stored about the customer;
`POST /v1/admin/customers/{id}/erase` removes it (idempotent). Another company's id: 404.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from services.booking.admin.customers.erasure import erase_customer
from services.booking.admin.customers.export import export_customer
from services.booking.admin.customers.schemas import CustomerExport, ErasureSummary
from shared.web.auth import AdminPrincipal
from shared.web.deps import Session

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No valid API key (problem+json)"},
    403: {"description": "The key lacks the admin scope (problem+json)"},
    404: {"description": "No such customer in the caller's company (problem+json)"},
}
router = APIRouter(prefix="/v1/admin/customers", tags=["admin", "data protection"])


@router.get(
    "/{id}/export",
    response_model=CustomerExport,
    responses=_PROBLEMS,
    summary="Export everything stored about a customer (DSGVO Art. 15/20)",
)
async def export(session: Session, _: AdminPrincipal, id: str) -> CustomerExport:
    return await export_customer(session, id)


@router.post(
    "/{id}/erase",
    response_model=ErasureSummary,
    responses=_PROBLEMS,
    summary="Erase a customer's personal data everywhere (DSGVO Art. 17); idempotent",
)
async def erase(request: Request, session: Session, _: AdminPrincipal, id: str) -> ErasureSummary:
    return await erase_customer(session, id, getattr(request.app.state, "redis", None))
