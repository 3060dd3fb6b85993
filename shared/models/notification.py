"""Notification configuration (4-level hierarchy x event x channel) and the event catalogue."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.types import StrEnum
from shared.models.base import Base, IdMixin, TenantMixin, TimestampMixin
from shared.models.policy import CONFIG_LEVELS

CHANNELS = ("email", "sms", "whatsapp")


class NotificationEventMapping(IdMixin, TimestampMixin, Base):
    """The platform-wide catalogue of the 13 event types (seeded by migration)."""

    __tablename__ = "notification_event_mappings"

    event_type: Mapped[str] = mapped_column(sa.String(64), unique=True)
    event_label: Mapped[str] = mapped_column(sa.String(200))
    event_label_en: Mapped[str] = mapped_column(sa.String(200))
    event_category: Mapped[str] = mapped_column(sa.String(32))
    default_channels: Mapped[list[str]] = mapped_column(sa.JSON)
    description: Mapped[str | None] = mapped_column(sa.String(500))
    is_system_event: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    is_active: Mapped[bool] = mapped_column(sa.Boolean, default=True)


class NotificationConfiguration(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "notification_configurations"
    __table_args__ = (
        sa.UniqueConstraint(
            "company_id",
            "level",
            "entity_id",
            "event_type",
            "channel",
            name="uq_notification_configurations_scope",
        ),
    )

    level: Mapped[str] = mapped_column(StrEnum(*CONFIG_LEVELS, name="level"))
    entity_id: Mapped[str] = mapped_column(sa.String(36))
    event_type: Mapped[str] = mapped_column(sa.String(64))
    channel: Mapped[str] = mapped_column(StrEnum(*CHANNELS, name="channel"))
    enabled: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    recipients: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    template_override: Mapped[str | None] = mapped_column(sa.Text)
    reminder_offset_minutes: Mapped[int | None] = mapped_column(sa.Integer)
    config: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
