"""Appointment JSON: instants in the branch's local offset, money as a two-place string."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from shared.models import Appointment


def local_iso(instant: datetime, timezone: str) -> str:
    return instant.astimezone(ZoneInfo(timezone)).isoformat()


def appointment_json(appointment: Appointment, timezone: str) -> dict[str, Any]:
    return {
        "id": appointment.id,
        "reference": appointment.reference,
        "company_id": appointment.company_id,
        "branch_id": appointment.branch_id,
        "service_id": appointment.service_id,
        "staff_id": appointment.staff_id,
        "customer_id": appointment.customer_id,
        "start": local_iso(appointment.starts_at, timezone),
        "end": local_iso(appointment.ends_at, timezone),
        "status": appointment.status,
        "sync_status": appointment.sync_status,
        "calcom_booking_uid": appointment.calcom_booking_uid,
        "source": appointment.source,
        "price": f"{appointment.price:.2f}",
        "currency": appointment.currency,
        "notes": appointment.notes,
        "created_at": local_iso(appointment.created_at, timezone),
    }
