"""Hierarchical policy configuration, the modification audit trail and its materialized stats."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.types import Money, StrEnum, UTCDateTime
from shared.models.base import Base, IdMixin, TenantMixin, TimestampMixin

CONFIG_LEVELS = ("company", "branch", "service", "staff")
POLICY_TYPES = ("cancellation", "reschedule")
MODIFICATION_TYPES = ("create", "cancel", "reschedule")
ACTORS = ("agent", "api", "calcom", "operator", "system")


class PolicyConfiguration(IdMixin, TenantMixin, TimestampMixin, Base):
    """One level's policy of one type; `entity_id` is the company, branch, service or staff id."""

    __tablename__ = "policy_configurations"
    __table_args__ = (
        sa.UniqueConstraint(
            "company_id", "level", "entity_id", "policy_type", name="uq_policy_configurations_scope"
        ),
    )

    level: Mapped[str] = mapped_column(StrEnum(*CONFIG_LEVELS, name="level"))
    entity_id: Mapped[str] = mapped_column(sa.String(36))
    policy_type: Mapped[str] = mapped_column(StrEnum(*POLICY_TYPES, name="policy_type"))
    config: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    updated_by: Mapped[str | None] = mapped_column(sa.String(100))


class PolicyConfigurationChange(IdMixin, TenantMixin, Base):
    """Who changed which policy when, with the config before and after."""

    __tablename__ = "policy_configuration_changes"
    __table_args__ = (sa.Index("ix_policy_configuration_changes_scope", "company_id", "entity_id"),)

    level: Mapped[str] = mapped_column(StrEnum(*CONFIG_LEVELS, name="level"))
    entity_id: Mapped[str] = mapped_column(sa.String(36))
    policy_type: Mapped[str] = mapped_column(StrEnum(*POLICY_TYPES, name="policy_type"))
    before: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    changed_by: Mapped[str | None] = mapped_column(sa.String(100))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AppointmentModification(IdMixin, TenantMixin, Base):
    """Audit trail: every cancel/reschedule with who, when, old/new time and fee."""

    __tablename__ = "appointment_modifications"
    __table_args__ = (
        sa.Index(
            "ix_appointment_modifications_quota", "customer_id", "modification_type", "created_at"
        ),
    )

    appointment_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("appointments.id", ondelete="CASCADE"), index=True
    )
    customer_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("customers.id", ondelete="CASCADE")
    )
    modification_type: Mapped[str] = mapped_column(
        StrEnum(*MODIFICATION_TYPES, name="modification_type")
    )
    actor: Mapped[str] = mapped_column(StrEnum(*ACTORS, name="actor"))
    old_starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    new_starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    fee: Mapped[Decimal] = mapped_column(Money(), default=Decimal("0.00"))
    currency: Mapped[str] = mapped_column(sa.String(3), default="EUR")
    within_policy: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    reason: Mapped[str | None] = mapped_column(sa.String(500))
    details: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AppointmentModificationStat(IdMixin, TenantMixin, Base):
    """Materialized per-customer counters, updated in the modification's own transaction."""

    __tablename__ = "appointment_modification_stats"
    __table_args__ = (
        sa.UniqueConstraint(
            "customer_id", "stat_type", "period_start", name="uq_appointment_modification_stats_key"
        ),
    )

    customer_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("customers.id", ondelete="CASCADE")
    )
    stat_type: Mapped[str] = mapped_column(
        StrEnum("cancellation_count", "reschedule_count", name="stat_type")
    )
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime] = mapped_column(UTCDateTime())
    count: Mapped[int] = mapped_column(sa.Integer, default=0)
    calculated_at: Mapped[datetime] = mapped_column(UTCDateTime())
