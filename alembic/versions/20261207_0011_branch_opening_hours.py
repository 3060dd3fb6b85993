"""branch opening hours and closed days

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 20:00:00+00:00

Weekly opening hours per branch (no rows: no constraint, as before) and the local dates a
branch is closed all day (entered by hand or imported public holidays), unique per branch.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db.types

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "branch_opening_hours",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("company_id", sa.String(length=36), nullable=False),
        sa.Column("branch_id", sa.String(length=36), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("start_time", sa.Time(), nullable=False),
        sa.Column("end_time", sa.Time(), nullable=False),
        sa.Column("created_at", shared.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", shared.db.types.UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "end_time > start_time", name=op.f("ck_branch_opening_hours_end_after_start")
        ),
        sa.CheckConstraint(
            "weekday BETWEEN 0 AND 6", name=op.f("ck_branch_opening_hours_weekday_range")
        ),
        sa.ForeignKeyConstraint(
            ["branch_id"],
            ["branches.id"],
            name=op.f("fk_branch_opening_hours_branch_id_branches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_branch_opening_hours_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_branch_opening_hours")),
    )
    with op.batch_alter_table("branch_opening_hours", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_branch_opening_hours_company_id"), ["company_id"], unique=False
        )
        batch_op.create_index(
            "ix_branch_opening_hours_branch_weekday",
            ["branch_id", "weekday", "start_time"],
            unique=False,
        )

    op.create_table(
        "branch_closed_days",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("company_id", sa.String(length=36), nullable=False),
        sa.Column("branch_id", sa.String(length=36), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "source",
            sa.Enum(
                "manual",
                "holidays",
                name="source",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("created_at", shared.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", shared.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["branch_id"],
            ["branches.id"],
            name=op.f("fk_branch_closed_days_branch_id_branches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_branch_closed_days_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_branch_closed_days")),
        sa.UniqueConstraint("branch_id", "day", name=op.f("uq_branch_closed_days_branch_id_day")),
    )
    with op.batch_alter_table("branch_closed_days", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_branch_closed_days_company_id"), ["company_id"], unique=False
        )


def downgrade() -> None:
    # Dropping a table drops its indexes (MariaDB refuses to drop an index a foreign key needs).
    op.drop_table("branch_closed_days")
    op.drop_table("branch_opening_hours")
