"""Cal.com API v2: the client, its errors, the booking model, the call log and retry timing."""

from shared.integrations.calcom.call_log import CallLog
from shared.integrations.calcom.client import BOOKINGS_API_VERSION, SLOTS_API_VERSION, CalcomClient
from shared.integrations.calcom.errors import (
    CalcomAddressRefused,
    CalcomError,
    CalcomRejected,
    CalcomTransient,
    CircuitOpen,
    describe,
)
from shared.integrations.calcom.models import CalcomBooking
from shared.integrations.calcom.retry import backoff_delay, retry_after_from_headers

__all__ = [
    "BOOKINGS_API_VERSION",
    "SLOTS_API_VERSION",
    "CalcomAddressRefused",
    "CalcomBooking",
    "CalcomClient",
    "CalcomError",
    "CalcomRejected",
    "CalcomTransient",
    "CallLog",
    "CircuitOpen",
    "backoff_delay",
    "describe",
    "retry_after_from_headers",
]
