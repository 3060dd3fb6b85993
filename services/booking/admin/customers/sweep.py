"""The erasure's sweep: every table with company data searched for values that mention the
person, whatever table a later change adds. Tables that describe the business are skipped."""

from __future__ import annotations

from collections import Counter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.booking.admin.customers.personal_data import ERASED, Identity, erased_hash, scrub
from services.booking.admin.customers.queries import mentioning, update_rows
from shared.models import Base

# Tables that describe the business, not its customers: never searched (a staff member who
# shares the customer's name keeps it). `customers` is handled row by row.
NOT_SEARCHED = frozenset(
    {
        "companies",
        "customers",
        "branches",
        "services",
        "staff",
        "staff_services",
        "working_hours",
        "time_off",
        "phone_numbers",
        "api_keys",
        "availability_cache",
        "appointment_locks",
        "notification_event_mappings",
        "notification_configurations",
        "notification_configuration_changes",
        "notification_templates",
        "policy_configurations",
        "policy_configuration_changes",
    }
)


def _models() -> dict[str, type[Any]]:
    """Mapped classes by table name."""
    return {
        getattr(mapper.local_table, "name", ""): mapper.class_ for mapper in Base.registry.mappers
    }


def _searchable(table: sa.Table) -> list[sa.Column[Any]]:
    unique = {
        column.name
        for constraint in table.constraints
        if isinstance(constraint, sa.UniqueConstraint | sa.PrimaryKeyConstraint)
        for column in constraint.columns
    }
    found = []
    for column in table.columns:
        if column.name in unique or column.foreign_keys or isinstance(column.type, sa.Enum):
            continue
        fits = isinstance(column.type, sa.String) and (column.type.length or 1000) >= len(ERASED)
        if fits or isinstance(column.type, sa.JSON):
            found.append(column)
    return found


async def sweep(session: AsyncSession, tenant: str, who: Identity) -> Counter[str]:
    """Every other table with company data: each text or JSON value mentioning them is
    replaced (in JSON: each string that does), whatever table a later change adds."""
    counts: Counter[str] = Counter()
    models = _models()
    for table in Base.metadata.sorted_tables:
        if table.name in NOT_SEARCHED or "company_id" not in table.c or table.name not in models:
            continue
        columns = _searchable(table)
        if not columns:
            continue
        model = models[table.name]
        attrs = [getattr(model, column.key) for column in columns]
        rows = (
            await session.execute(
                sa.select(model.id, *attrs).where(
                    model.company_id == tenant, mentioning(attrs, who)
                )
            )
        ).all()
        changed = 0
        for row in rows:
            values: dict[str, Any] = {}
            for column, value in zip(columns, row[1:], strict=True):
                new, touched = scrub(value, who)
                if touched:
                    values[column.key] = new
            if not values:
                continue
            if table.name == "idempotency_keys":
                # The fingerprint hashes the request body: their data, if guessable.
                values["request_fingerprint"] = erased_hash(row.id)
            changed += await update_rows(session, model, [model.id == row.id], **values)
        if changed:
            counts[table.name] = changed
    return counts
