"""Generic admin CRUD over tenant tables: one description per resource, one code path for all.

The session is bound to the caller's company (`shared.db.tenancy`), so every query here is
filtered by company and every new row is stamped with it; ids of other companies are simply
not found. Writes are flushed inside the request so constraint violations surface here as
409 answers instead of failing at commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.admin.paging import (
    MAX_LIMIT,
    after,
    decode_position,
    encode_position,
    sort_keys,
)
from services.booking.admin.schemas import Filters, Input, Output, partial
from shared.db.scoped import scoped
from shared.db.tenancy import SYSTEM
from shared.errors import Conflict, InvalidInput, NotFound, PlatformKeyRequired

Rule = Callable[[AsyncSession, dict[str, Any], Any], Awaitable[None]]
"""A check of the merged values before a write; gets the current row on update, else None."""
DeleteGuard = Callable[[AsyncSession, Any], Awaitable[None]]
Presenter = Callable[[AsyncSession, Sequence[Any]], Awaitable[list[Output]]]


@dataclass(frozen=True)
class Unique:
    """Columns whose values must be unique (case-insensitively) within the company."""

    fields: tuple[str, ...]
    message: str
    across_companies: bool = False


@dataclass(frozen=True)
class Resource:
    """Everything the generic endpoints need to know about one admin resource."""

    path: str
    label: str
    model: type[Any]
    create: type[Input]
    out: type[Output]
    filters: type[Filters]
    order_by: Callable[[], Sequence[Any]]
    references: Mapping[str, type[Any]] = field(default_factory=dict)
    unique: Sequence[Unique] = ()
    rules: Sequence[Rule] = ()
    before_delete: DeleteGuard | None = None
    presenter: Presenter | None = None
    # Fields only a platform key may set or change (creating a row that sets one included).
    platform_only: tuple[str, ...] = ()

    @cached_property
    def update(self) -> type[Input]:
        return partial(self.create)


def invalid(exc: ValidationError) -> InvalidInput:
    """A pydantic error as the same 422 the request validation gives."""
    errors = [
        {"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
        for err in exc.errors()
    ]
    fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
    return InvalidInput(f"Invalid value for: {fields}", field=errors[0]["field"], errors=errors)


async def get_or_404(
    session: AsyncSession, resource: Resource, id: str, *, for_update: bool = False
) -> Any:
    stmt = select(resource.model).where(resource.model.id == id)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"No such {resource.label}.")
    return row


@dataclass(frozen=True)
class Page:
    """One page of a list and the cursor of the next one (None on the last page)."""

    rows: Sequence[Any]
    next_cursor: str | None


async def list_rows(
    session: AsyncSession,
    resource: Resource,
    filters: Filters,
    *,
    limit: int = MAX_LIMIT,
    cursor: str | None = None,
) -> Page:
    """A page of `limit` rows in the resource's order, after the position `cursor` names."""
    model = resource.model
    conditions = [getattr(model, k) == v for k, v in filters.model_dump(exclude_none=True).items()]
    order = resource.order_by()
    keys = sort_keys(order)
    if cursor is not None:
        conditions.append(after(keys, decode_position(cursor, keys)))
    stmt = select(model).where(*conditions).order_by(*order).limit(limit + 1)
    rows = (await session.execute(stmt)).scalars().all()
    if len(rows) <= limit:
        return Page(rows, None)
    return Page(rows[:limit], encode_position(keys, rows[limit - 1]))


async def present(session: AsyncSession, resource: Resource, rows: Sequence[Any]) -> list[Output]:
    if resource.presenter is not None:
        return await resource.presenter(session, rows)
    return [resource.out.model_validate(row) for row in rows]


async def create(
    session: AsyncSession, resource: Resource, body: Input, *, platform: bool = False
) -> Any:
    values = body.model_dump()
    _platform_fields(resource, values, None, platform)
    await _check(session, resource, values, None)
    row = resource.model(**values)
    session.add(row)
    await flush(session, f"The {resource.label} conflicts with existing data.")
    return row


async def update(
    session: AsyncSession, resource: Resource, id: str, body: Input, *, platform: bool = False
) -> Any:
    """Apply a PATCH: the merged row is validated as a whole, as if it were created anew."""
    row = await get_or_404(session, resource, id, for_update=True)
    merged = {name: getattr(row, name) for name in resource.create.model_fields}
    merged.update(body.model_dump(exclude_unset=True))
    try:
        values = resource.create.model_validate(merged).model_dump()
    except ValidationError as exc:
        raise invalid(exc) from exc
    _platform_fields(resource, values, row, platform)
    await _check(session, resource, values, row)
    for name, value in values.items():
        setattr(row, name, value)
    await flush(session, f"The {resource.label} conflicts with existing data.")
    return row


async def delete(session: AsyncSession, resource: Resource, id: str) -> None:
    row = await get_or_404(session, resource, id, for_update=True)
    if resource.before_delete is not None:
        await resource.before_delete(session, row)
    await session.delete(row)
    await flush(session, f"The {resource.label} is still in use.")


async def flush(session: AsyncSession, message: str) -> None:
    """Flush now, so a constraint violation (e.g. a concurrent duplicate) becomes a 409."""
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(message) from exc


async def exists(session: AsyncSession, model: type[Any], id: str) -> bool:
    """Whether `id` is a row of `model` in the session's company."""
    return (await session.scalar(select(model.id).where(model.id == id))) is not None


def _platform_fields(
    resource: Resource, values: dict[str, Any], current: Any, platform: bool
) -> None:
    """403 when a company key sets or changes a field only the platform may (for a phone
    number: the number and the Retell agent, which route calls to a company)."""
    if platform:
        return
    for name in resource.platform_only:
        value = values.get(name)
        changed = value is not None if current is None else value != getattr(current, name)
        if changed:
            raise PlatformKeyRequired(
                f"Only a platform key may set {name} of a {resource.label}.", field=name
            )


async def _check(
    session: AsyncSession, resource: Resource, values: dict[str, Any], current: Any
) -> None:
    for name, target in resource.references.items():
        value = values.get(name)
        if value is not None and not await exists(session, target, value):
            raise InvalidInput(f"{name} names no record of your company.", field=name)
    for unique in resource.unique:
        if await _taken(session, resource.model, unique, values, current):
            raise Conflict(unique.message, field=unique.fields[-1])
    for rule in resource.rules:
        await rule(session, values, current)


async def _taken(
    session: AsyncSession, model: type[Any], unique: Unique, values: dict[str, Any], current: Any
) -> bool:
    stmt: Select[Any] = select(model.id)
    for name in unique.fields:
        value = values[name]
        column = getattr(model, name)
        stmt = stmt.where(
            func.lower(column) == value.lower() if isinstance(value, str) else column == value
        )
    if current is not None:
        stmt = stmt.where(model.id != current.id)
    stmt = stmt.limit(1)
    if unique.across_companies:  # e.g. a phone number: unique over all companies
        stmt = scoped(stmt, SYSTEM)
    return (await session.execute(stmt)).first() is not None
