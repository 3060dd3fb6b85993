"""The `api_call_logs` trail of every Cal.com call, with personal data redacted.

Each record is its own short transaction so that it survives the caller's rollback (a failed
sync job must still leave the evidence of what Cal.com answered). On SQLite this means a caller
must not hold a write transaction while it calls Cal.com (it should not anyway: no external I/O
under the write lock), or the record would wait for the caller's lock.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.db.types import utcnow
from shared.integrations.calcom.models import JsonObject
from shared.models.integration import ApiCallLog
from shared.observability.logging import correlation_id_var

log = logging.getLogger(__name__)

REDACTED = "***"
# Keys whose values identify a person (attendee, guest) or may (free text: notes, reasons, the
# titles Cal.com fills with the attendee's name). Compared case-insensitively, at any depth.
PERSONAL_KEYS = frozenset(
    {
        "name",
        "email",
        "phone",
        "phonenumber",
        "attendeephonenumber",
        "attendeename",
        "attendeeemail",
        "notes",
        "description",
        "title",
        "guests",
        "cancelledbyemail",
        "rescheduledbyemail",
        "location",
        "cancellationreason",
        "reschedulingreason",
    }
)
MAX_STORED_CHARS = 64_000  # a long booking list is summarised, not stored whole


def redact(value: Any) -> Any:
    """A copy of `value` with every personal field's value replaced by "***"."""
    if isinstance(value, dict):
        return {
            key: (
                REDACTED
                if isinstance(key, str) and key.lower() in PERSONAL_KEYS and value[key] is not None
                else redact(value[key])
            )
            for key in value
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def _bounded(body: JsonObject | None) -> JsonObject | None:
    if body is None:
        return None
    redacted = redact(body)
    size = len(json.dumps(redacted, default=str))
    if size <= MAX_STORED_CHARS:
        return redacted  # type: ignore[no-any-return]
    # Stored in place of a body too large to keep: what it was, not what it said.
    return {"truncated": True, "chars": size, "status": body.get("status")}


class CallLog:
    """Writes one `api_call_logs` row per Cal.com call (service "calcom")."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(
        self,
        *,
        company_id: str | None,
        method: str,
        endpoint: str,
        status: int | None,
        duration_ms: int,
        request: JsonObject | None,
        response: JsonObject | None,
        error: str | None,
        correlation_id: str | None = None,
    ) -> None:
        """Store the call; a logging failure is logged and swallowed, never the caller's error."""
        row = ApiCallLog(
            company_id=company_id,
            correlation_id=correlation_id or correlation_id_var.get(),
            service="calcom",
            method=method.upper()[:10],
            endpoint=endpoint[:500],
            request_payload=_bounded(request),
            response_status=status,
            response_body=_bounded(response),
            duration_ms=duration_ms,
            error_message=error[:2000] if error else None,
            created_at=utcnow(),
        )
        try:
            async with self.db.transaction(SYSTEM) as session:
                session.add(row)
        except Exception as exc:  # the audit trail must not fail the call
            log.warning(
                "calcom call log not stored",
                extra={"endpoint": endpoint, "error": f"{type(exc).__name__}: {exc}"},
            )
