"""Keyset cursors of the paged lists (pure): the position after (instant, id), opaque to
clients; anything else given as `cursor` is a 422 naming `cursor`."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from shared.errors import InvalidInput

MAX_LIMIT = 500  # the largest page any list serves


def encode_cursor(instant: datetime, row_id: str) -> str:
    """The position after the row (`instant`, `row_id`) of a list ordered by both."""
    if instant.tzinfo is None:  # SQLite hands back naive UTC
        instant = instant.replace(tzinfo=UTC)
    raw = f"{instant.astimezone(UTC).isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """(instant in UTC, id) from a cursor `encode_cursor` made, else 422 naming `cursor`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, row_id = raw.split("|", 1)
        instant = datetime.fromisoformat(stamp)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidInput("Not a cursor this API returned.", field="cursor") from None
    if instant.utcoffset() is None or not row_id or len(row_id) > 36:
        raise InvalidInput("Not a cursor this API returned.", field="cursor")
    return instant.astimezone(UTC), row_id
