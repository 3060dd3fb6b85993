"""The callback list's statement (built once per form, scoped per call)."""

from __future__ import annotations

import functools
from typing import Any, Final

import sqlalchemy as sa

from shared.db.scoped import scoped
from shared.db.tenancy import PER_CALL
from shared.models import Branch, CallbackRequest

# The list's columns: the callback's columns that `callback_json` shows (as attributes;
# `escalation_level` is its escalation count) and its branch's zone.
_NOT_LISTED: Final = frozenset({"updated_at", "expired_at", "next_escalation_at"})
_LIST_COLUMNS: Final = sa.select(
    *(
        getattr(CallbackRequest, attr.key)
        for attr in sa.inspect(CallbackRequest).column_attrs
        if attr.key not in _NOT_LISTED
    ),
    Branch.timezone.label("timezone"),
).outerjoin(Branch, Branch.id == CallbackRequest.branch_id)


@functools.lru_cache(maxsize=256)
def list_query(
    statuses: tuple[str, ...], *, by_branch: bool, paged: bool, limit: int
) -> sa.Select[Any]:
    """The list of `list_views` for `statuses`, oldest due first, built once per form and
    scoped per call (building and scoping it per run compiled it twice: most of a page's
    cost). Parameters: `tenant`, `before` (due before; far future when not overdue),
    `branch_id` when `by_branch`, `after_due`/`after_id` (the position after which the page
    starts) when `paged`.

    The index (company_id, status, due_at) (InnoDB appends the primary key) yields each
    status's callbacks already in (due_at, id) order: one range read per status, cut at
    `limit`, gives at most statuses x limit candidates, and only those are merged and sorted.
    A single range over several statuses would sort all its rows (every overdue callback).
    """
    parts: list[sa.Select[Any]] = []
    for each in statuses:
        part = sa.select(CallbackRequest.id, CallbackRequest.due_at).where(
            CallbackRequest.status == each, CallbackRequest.due_at < sa.bindparam("before")
        )
        if by_branch:
            part = part.where(CallbackRequest.branch_id == sa.bindparam("branch_id"))
        if paged:
            after_due = sa.bindparam("after_due", type_=CallbackRequest.due_at.type)
            part = part.where(
                sa.or_(
                    CallbackRequest.due_at > after_due,
                    sa.and_(
                        CallbackRequest.due_at == after_due,
                        CallbackRequest.id > sa.bindparam("after_id"),
                    ),
                )
            )
        ordered = part.order_by(CallbackRequest.due_at, CallbackRequest.id).limit(limit).subquery()
        # A derived table each: SQLite allows no LIMIT on a UNION member itself.
        parts.append(sa.select(ordered.c.id, ordered.c.due_at))
    if not parts:
        return scoped(_LIST_COLUMNS.where(sa.false()), PER_CALL)
    page = (parts[0] if len(parts) == 1 else sa.union_all(*parts)).subquery("page")
    return scoped(
        _LIST_COLUMNS.join(page, page.c.id == CallbackRequest.id)
        .order_by(page.c.due_at, page.c.id)
        .limit(limit),
        PER_CALL,
    )
