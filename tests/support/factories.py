"""Plain async factories for test data; each test makes its own company, so tests never collide."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from shared.api_keys import issue_key
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.models import Company


@dataclass(frozen=True)
class Tenant:
    company_id: str
    admin_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}


async def create_tenant(
    db: Database, name: str | None = None, scopes: list[str] | None = None
) -> Tenant:
    """A new company with one API key (admin scope unless told otherwise)."""
    async with db.transaction(SYSTEM) as session:
        company = Company(name=name or f"Test Co {uuid.uuid4().hex[:8]}")
        session.add(company)
        await session.flush()
        issued = issue_key(session, company_id=company.id, name="test", scopes=scopes or ["admin"])
    return Tenant(company_id=company.id, admin_key=issued.plaintext)


async def create_platform_key(db: Database, scopes: list[str] | None = None) -> str:
    """A platform key (no company): callers must send X-Company-ID."""
    async with db.transaction(SYSTEM) as session:
        issued = issue_key(session, company_id=None, name="platform", scopes=scopes or ["admin"])
    return issued.plaintext
