"""seed the 13 notification event types (German and English labels, default channels)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 16:10:00+00:00
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen here on purpose: a migration must not change when application code does.
EVENTS = [
    ("booking_confirmed", "Termin bestätigt", "Booking confirmed", "booking", ["email", "sms"]),
    ("booking_rescheduled", "Termin verschoben", "Booking rescheduled", "booking", ["email", "sms"]),
    ("booking_cancelled", "Termin storniert", "Booking cancelled", "booking", ["email", "sms"]),
    ("booking_reminder_24h", "Terminerinnerung (24 Stunden vorher)", "Booking reminder (24 hours before)", "reminder", ["email"]),
    ("booking_reminder_2h", "Terminerinnerung (2 Stunden vorher)", "Booking reminder (2 hours before)", "reminder", ["sms"]),
    ("booking_no_show", "Termin nicht wahrgenommen", "Booking no-show", "booking", ["email"]),
    ("booking_sync_failed", "Kalender-Synchronisierung fehlgeschlagen", "Calendar sync failed", "system", ["email"]),
    ("cancellation_fee_charged", "Stornogebühr berechnet", "Cancellation fee charged", "policy", ["email"]),
    ("modification_quota_exceeded", "Änderungslimit überschritten", "Modification quota exceeded", "policy", ["email"]),
    ("callback_requested", "Rückruf angefordert", "Callback requested", "callback", ["email"]),
    ("callback_assigned", "Rückruf zugewiesen", "Callback assigned", "callback", ["email"]),
    ("callback_overdue", "Rückruf überfällig", "Callback overdue", "callback", ["email", "sms"]),
    ("callback_escalated", "Rückruf eskaliert", "Callback escalated", "callback", ["email", "sms"]),
]
NAMESPACE = uuid.UUID("6f1c2d4e-9a57-4c1b-8f0e-3d2a1b0c9e87")

events = sa.table(
    "notification_event_mappings",
    sa.column("id", sa.String),
    sa.column("event_type", sa.String),
    sa.column("event_label", sa.String),
    sa.column("event_label_en", sa.String),
    sa.column("event_category", sa.String),
    sa.column("default_channels", sa.JSON),
    sa.column("description", sa.String),
    sa.column("is_system_event", sa.Boolean),
    sa.column("is_active", sa.Boolean),
    sa.column("created_at", sa.DateTime),
    sa.column("updated_at", sa.DateTime),
)


def upgrade() -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    op.bulk_insert(
        events,
        [
            {
                "id": str(uuid.uuid5(NAMESPACE, event_type)),
                "event_type": event_type,
                "event_label": label_de,
                "event_label_en": label_en,
                "event_category": category,
                "default_channels": channels,
                "description": label_en,
                "is_system_event": True,
                "is_active": True,
                "created_at": now,
                "updated_at": now,
            }
            for event_type, label_de, label_en, category, channels in EVENTS
        ],
    )


def downgrade() -> None:
    op.execute(
        events.delete().where(events.c.event_type.in_([event[0] for event in EVENTS]))
    )
