"""Keyset cursors of the admin lists (pure): the sort values of the last row shown, opaque to
clients; anything else given as `cursor` is a 422 naming `cursor`."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import TypeDecorator, and_, false, or_
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ColumnElement, UnaryExpression

from shared.errors import InvalidInput

MAX_LIMIT = 500
Key = tuple[Any, bool]
"""A column of a list's order and whether it is descending."""


def sort_keys(order: Sequence[Any]) -> list[Key]:
    """(column, descending) for each ORDER BY term (`col` or `col.desc()`)."""
    keys: list[Key] = []
    for term in order:
        if isinstance(term, UnaryExpression) and term.modifier is operators.desc_op:
            keys.append((term.element, True))
        else:
            keys.append((term, False))
    return keys


def encode_position(keys: Sequence[Key], row: Any) -> str:
    """The position after `row` in a list ordered by `keys`."""
    values = [_plain(getattr(row, column.key)) for column, _ in keys]
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_position(cursor: str, keys: Sequence[Key]) -> list[Any]:
    """The sort values a cursor of `encode_position` holds, else 422 naming `cursor`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(keys):
            raise ValueError(cursor)
        return [_typed(value, column) for value, (column, _) in zip(values, keys, strict=True)]
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        raise InvalidInput("Not a cursor this API returned.", field="cursor") from None


def after(keys: Sequence[Key], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly after the position `values` in the order `keys` (mixed directions)."""
    branches = []
    for i, (column, descending) in enumerate(keys):
        equal = [keys[j][0] == values[j] for j in range(i)]
        beyond = column < values[i] if descending else column > values[i]
        branches.append(and_(*equal, beyond))
    return or_(false(), *branches)


def _plain(value: Any) -> Any:
    """A sort value as JSON (instants, times and dates as ISO text)."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return value


def _typed(value: Any, column: Any) -> Any:
    """A JSON sort value back as the column's Python type; ValueError when it is not one."""
    column_type = column.type
    if isinstance(column_type, TypeDecorator):  # an instant: UTCDateTime over DateTime
        column_type = column_type.impl_instance
    kind = column_type.python_type
    if kind is datetime:
        instant = datetime.fromisoformat(value)
        if instant.utcoffset() is None:
            raise ValueError(value)
        return instant
    if kind in (date, time):
        return kind.fromisoformat(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is str and isinstance(value, str) and len(value) <= 255:
        return value
    raise ValueError(value)
