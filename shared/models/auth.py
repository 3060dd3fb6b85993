"""API keys: random, shown once, stored as a SHA-256 hash, scoped."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.types import UTCDateTime
from shared.models.base import Base, IdMixin, TenantScoped, TimestampMixin


class ApiKey(IdMixin, TenantScoped, TimestampMixin, Base):
    """A key of one company, or a platform key (company_id NULL) that must name X-Company-ID.

    Tenant-scoped (a company session sees its own keys only); authentication looks keys up
    before any tenant is known, in the explicit system scope.
    """

    __tablename__ = "api_keys"

    company_id: Mapped[str | None] = mapped_column(
        sa.String(36), sa.ForeignKey("companies.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(sa.String(100))
    prefix: Mapped[str] = mapped_column(sa.String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(sa.String(64))
    scopes: Mapped[list[str]] = mapped_column(sa.JSON)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
