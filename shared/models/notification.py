"""Notification configuration (4-level hierarchy x event x channel) and the event catalogue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.types import StrEnum, UTCDateTime
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


NOTIFICATION_LANGUAGES = ("de", "en")
DELIVERY_STATUSES = ("sending", "sent", "retrying", "failed", "skipped")


class NotificationConfigurationChange(IdMixin, TenantMixin, Base):
    """The audit trail of notification configuration writes (who, when, before, after)."""

    __tablename__ = "notification_configuration_changes"

    level: Mapped[str] = mapped_column(sa.String(16))
    entity_id: Mapped[str] = mapped_column(sa.String(36))
    event_type: Mapped[str] = mapped_column(sa.String(64))
    channel: Mapped[str] = mapped_column(sa.String(16))
    before: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    changed_by: Mapped[str] = mapped_column(sa.String(100))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class NotificationTemplate(IdMixin, TenantMixin, TimestampMixin, Base):
    """A company's own template for one event x channel x language (else the built-in one)."""

    __tablename__ = "notification_templates"
    __table_args__ = (
        sa.UniqueConstraint(
            "company_id", "event_type", "channel", "language", name="uq_notification_templates"
        ),
    )

    event_type: Mapped[str] = mapped_column(sa.String(64))
    channel: Mapped[str] = mapped_column(StrEnum(*CHANNELS, name="channel"))
    language: Mapped[str] = mapped_column(StrEnum(*NOTIFICATION_LANGUAGES, name="language"))
    subject: Mapped[str | None] = mapped_column(sa.String(255))
    body: Mapped[str] = mapped_column(sa.Text)
    updated_by: Mapped[str | None] = mapped_column(sa.String(100))


class NotificationDelivery(IdMixin, TenantMixin, TimestampMixin, Base):
    """One message of one event to one recipient over one channel.

    UNIQUE (event_id, channel, recipient_key) is what makes a notify job that runs twice (or
    on two workers at once) send once: the job claims the row before it sends. The recipient
    is kept only masked and as a hash (`recipient_key`); the plain address is derived again
    from the event whenever a retry needs it.
    """

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        sa.UniqueConstraint(
            "event_id", "channel", "recipient_key", name="uq_notification_deliveries_once"
        ),
        sa.Index("ix_notification_deliveries_appointment", "company_id", "appointment_id"),
        sa.Index("ix_notification_deliveries_status", "company_id", "status", "created_at"),
    )

    event_id: Mapped[str] = mapped_column(sa.String(100))
    event_type: Mapped[str] = mapped_column(sa.String(64))
    channel: Mapped[str] = mapped_column(StrEnum(*CHANNELS, name="channel"))
    recipient_key: Mapped[str] = mapped_column(sa.String(64))
    recipient_masked: Mapped[str] = mapped_column(sa.String(255))
    recipient_kind: Mapped[str] = mapped_column(sa.String(16))
    language: Mapped[str] = mapped_column(sa.String(5))
    appointment_id: Mapped[str | None] = mapped_column(sa.String(36))
    callback_id: Mapped[str | None] = mapped_column(sa.String(36), index=True)
    status: Mapped[str] = mapped_column(
        StrEnum(*DELIVERY_STATUSES, name="status"), default="sending"
    )
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    provider_message_id: Mapped[str | None] = mapped_column(sa.String(255))
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    # A claim: while `lease_until` is in the future one worker is sending this message.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class NotificationReminder(IdMixin, TenantMixin, Base):
    """A reminder staged for one appointment start and channel: UNIQUE makes each one exactly
    once (the offset is configured per event and channel).

    The start is part of the key, so a moved appointment gets reminders for its new time.
    """

    __tablename__ = "notification_reminders"
    __table_args__ = (
        sa.UniqueConstraint(
            "appointment_id",
            "event_type",
            "channel",
            "starts_at",
            name="uq_notification_reminders_once",
        ),
    )

    appointment_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("appointments.id", ondelete="CASCADE")
    )
    event_type: Mapped[str] = mapped_column(sa.String(64))
    channel: Mapped[str] = mapped_column(StrEnum(*CHANNELS, name="channel"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    staged_at: Mapped[datetime] = mapped_column(UTCDateTime())
