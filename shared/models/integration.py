"""Traffic with the outside: inbound webhook events, outbound call logs, the job outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.types import StrEnum, UTCDateTime
from shared.models.base import Base, IdMixin, TenantScoped, TimestampMixin

WEBHOOK_STATUSES = ("pending", "processing", "processed", "failed", "ignored")
OUTBOX_STATUSES = ("pending", "enqueued", "done", "failed")


class WebhookEvent(IdMixin, TenantScoped, TimestampMixin, Base):
    """A received webhook, stored before it is processed; UNIQUE(source, event_id) dedupes.

    `company_id` is NULL until the event is attributed (a Retell event names its tenant only
    through the called number).
    """

    __tablename__ = "webhook_events"
    __table_args__ = (
        sa.UniqueConstraint("source", "event_id"),
        sa.Index("ix_webhook_events_status", "status", "created_at"),
    )

    company_id: Mapped[str | None] = mapped_column(
        sa.String(36), sa.ForeignKey("companies.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(sa.String(20))
    event_id: Mapped[str] = mapped_column(sa.String(255))
    event_type: Mapped[str] = mapped_column(sa.String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    status: Mapped[str] = mapped_column(
        StrEnum(*WEBHOOK_STATUSES, name="status"), default="pending"
    )
    correlation_id: Mapped[str | None] = mapped_column(sa.String(128))
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ApiCallLog(IdMixin, TenantScoped, Base):
    """One outbound call to a third party (Cal.com, Retell), personal data redacted."""

    __tablename__ = "api_call_logs"
    __table_args__ = (sa.Index("ix_api_call_logs_service_status", "service", "response_status"),)

    company_id: Mapped[str | None] = mapped_column(
        sa.String(36), sa.ForeignKey("companies.id", ondelete="CASCADE"), index=True
    )
    correlation_id: Mapped[str | None] = mapped_column(sa.String(128), index=True)
    service: Mapped[str] = mapped_column(sa.String(50))
    method: Mapped[str] = mapped_column(sa.String(10))
    endpoint: Mapped[str] = mapped_column(sa.String(500))
    request_payload: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    response_status: Mapped[int | None] = mapped_column(sa.Integer)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    duration_ms: Mapped[int | None] = mapped_column(sa.Integer)
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class OutboxEvent(IdMixin, TenantScoped, TimestampMixin, Base):
    """A job staged inside the business transaction; sent to its queue only after commit.

    A sweeper re-enqueues rows left `pending` (crash between commit and enqueue, Redis loss).
    """

    __tablename__ = "outbox_events"
    __table_args__ = (sa.Index("ix_outbox_events_status", "status", "available_at"),)

    company_id: Mapped[str | None] = mapped_column(
        sa.String(36), sa.ForeignKey("companies.id", ondelete="CASCADE"), index=True
    )
    queue: Mapped[str] = mapped_column(sa.String(50))
    job_name: Mapped[str] = mapped_column(sa.String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    aggregate_id: Mapped[str | None] = mapped_column(sa.String(36), index=True)
    correlation_id: Mapped[str | None] = mapped_column(sa.String(128))
    status: Mapped[str] = mapped_column(StrEnum(*OUTBOX_STATUSES, name="status"), default="pending")
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(sa.Text)
