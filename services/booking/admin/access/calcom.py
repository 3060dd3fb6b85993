"""The company's Cal.com credentials (on the company row). Without them: local calendar only."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.admin.access.schemas import CalcomIntegrationIn, CalcomIntegrationOut
from services.booking.admin.crud import flush
from shared.config import Settings
from shared.errors import NotFound
from shared.fields import mask
from shared.models import Company
from shared.security.outbound import check_outbound_url

CALCOM_API_URL = "https://api.cal.com"


async def _company(session: AsyncSession, company_id: str, *, for_update: bool = True) -> Company:
    stmt = select(Company).where(Company.id == company_id)
    if for_update:
        stmt = stmt.with_for_update()
    company = (await session.execute(stmt)).scalar_one_or_none()
    if company is None:
        raise NotFound("No such company.")
    return company


def present(company: Company, *, reveal_secret: bool = False) -> CalcomIntegrationOut:
    secret = company.calcom_webhook_secret
    return CalcomIntegrationOut(
        configured=company.calcom_api_key is not None,
        api_key=mask(company.calcom_api_key),
        base_url=company.calcom_base_url,
        webhook_secret=secret if reveal_secret else mask(secret),
        webhook_path=f"/v1/webhooks/calcom/{company.id}",
    )


async def get_integration(session: AsyncSession, company_id: str) -> CalcomIntegrationOut:
    return present(await _company(session, company_id, for_update=False))


async def put_integration(
    session: AsyncSession, company_id: str, body: CalcomIntegrationIn, settings: Settings
) -> CalcomIntegrationOut:
    """Store the credentials; a webhook secret is kept, or generated and shown this once.

    A base URL of the tenant's own must pass `check_outbound_url` (422 outbound_url_refused,
    nothing stored); the default is the operator's CALCOM_BASE_URL.
    """
    base_url = check_outbound_url(body.base_url, settings) if body.base_url else None
    company = await _company(session, company_id)
    company.calcom_api_key = body.api_key
    company.calcom_base_url = base_url or (settings.calcom_base_url or CALCOM_API_URL).rstrip("/")
    generated = False
    if body.webhook_secret is not None:
        company.calcom_webhook_secret = body.webhook_secret
    elif company.calcom_webhook_secret is None:
        company.calcom_webhook_secret = secrets.token_urlsafe(32)
        generated = True
    await flush(session, "The integration could not be stored; try again.")
    return present(company, reveal_secret=generated)


async def delete_integration(session: AsyncSession, company_id: str) -> None:
    """Forget the credentials: the company goes back to the local calendar (idempotent)."""
    company = await _company(session, company_id)
    company.calcom_api_key = None
    company.calcom_base_url = None
    company.calcom_webhook_secret = None
    await flush(session, "The integration could not be removed; try again.")
