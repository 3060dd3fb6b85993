"""caller identity: appointment booking references

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 07:00:00+00:00

Every appointment gets `reference`: 6 characters from an alphabet without look-alikes, unique
per company. Existing rows are backfilled here with random, per-company unique codes. The
column is added NOT NULL with a temporary empty default and the uniqueness is a unique index:
both work on SQLite without rebuilding `appointments` (a rebuild would DROP the table, which
with foreign keys on cascades into its children).
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of shared/security/references.py as of this revision (migrations never import app code).
_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_LENGTH = 6


def _draw(used: set[str]) -> str:
    while True:
        code = "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))
        if code not in used:
            used.add(code)
            return code


def upgrade() -> None:
    op.add_column(
        "appointments",
        sa.Column("reference", sa.String(length=6), nullable=False, server_default=""),
    )
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, company_id FROM appointments")).all()
    used: dict[str, set[str]] = {}
    updates = [
        {"id": row_id, "reference": _draw(used.setdefault(company_id, set()))}
        for row_id, company_id in rows
    ]
    if updates:
        bind.execute(
            sa.text("UPDATE appointments SET reference = :reference WHERE id = :id"), updates
        )
    if bind.dialect.name != "sqlite":  # SQLite cannot drop a column default in place
        op.alter_column(
            "appointments",
            "reference",
            existing_type=sa.String(length=6),
            existing_nullable=False,
            server_default=None,
        )
    op.create_index(
        "uq_appointments_company_reference",
        "appointments",
        ["company_id", "reference"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_appointments_company_reference", table_name="appointments")
    op.drop_column("appointments", "reference")  # SQLite >= 3.35 drops it in place
