"""Declarative base with a constraint naming convention and the common mixins."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from shared.db.types import UTCDateTime, new_id, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class IdMixin:
    id: Mapped[str] = mapped_column(sa.String(36), primary_key=True, default=new_id, sort_order=-10)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, nullable=False, sort_order=90
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False, sort_order=91
    )


class TenantScoped:
    """Marks a mapped class whose rows belong to a company: its `company_id` (for `Company`, a
    synonym of its id) is what `shared.db.tenancy` filters every ORM query on it by. A table
    with company data whose class lacks the marker is refused at start-up
    (`shared.db.tenancy.uncovered_tables`); `company_id` may be nullable (platform rows, seen
    only in the system scope)."""

    @declared_attr
    def company_id(cls) -> Mapped[str | None]:
        """Nullable by default (platform rows); TenantMixin requires it, Company aliases id."""
        return mapped_column(
            sa.String(36),
            sa.ForeignKey("companies.id", ondelete="CASCADE"),
            nullable=True,
            index=True,
            sort_order=-9,
        )


class TenantMixin(TenantScoped):
    """A tenant-owned table with a required `company_id` (the common case of `TenantScoped`)."""

    @declared_attr
    def company_id(cls) -> Mapped[str]:
        return mapped_column(
            sa.String(36),
            sa.ForeignKey("companies.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
            sort_order=-9,
        )
