"""Customers for the front desk: `GET /v1/customers?phone=|name=` and `GET /v1/customers/{id}`
(scope `operator` or `service`; phone numbers masked unless the key has the admin scope)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.booking.customers import service
from services.booking.customers.schemas import CustomerDetail, CustomerList
from shared.fields import Phone
from shared.web.auth import ReaderPrincipal
from shared.web.deps import Session
from shared.web.paging import MAX_LIMIT

router = APIRouter(prefix="/v1/customers", tags=["customers"])

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    403: {"description": "The key has neither the operator nor the service scope"},
    404: {"description": "No such customer (in this company)"},
    422: {"description": "Invalid filter, limit or cursor; `field` names it"},
}


@router.get("", response_model=CustomerList, responses=_PROBLEMS)
async def search_customers(
    principal: ReaderPrincipal,
    session: Session,
    phone: Annotated[
        Phone | None, Query(description="Any usual form (national or E.164); exact match")
    ] = None,
    name: Annotated[
        str | None,
        Query(min_length=2, max_length=200, description="Part of the name, any case"),
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> CustomerList:
    """Customers by phone number and/or name (at least one), oldest first; keyset pages:
    pass `next_cursor` as `cursor`. `created_at` in the company's local offset."""
    return await service.search(
        session,
        phone=phone,
        name=name,
        cursor=cursor,
        limit=limit,
        full_phone=principal.has("admin"),
    )


@router.get("/{customer_id}", response_model=CustomerDetail, responses=_PROBLEMS)
async def get_customer(
    principal: ReaderPrincipal, session: Session, customer_id: str
) -> CustomerDetail:
    """The customer with upcoming live appointments (instants in the branch's local offset)
    and how many appointments they did not come to."""
    return await service.detail(session, customer_id, full_phone=principal.has("admin"))
