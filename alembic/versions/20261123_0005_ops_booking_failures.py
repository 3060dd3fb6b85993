"""ops: booking failures (attempts that ended in an error, for the failed-booking view);
appointments by sync status

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 21:21:21.273087+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

import shared.db.types
from alembic import op


revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "booking_failures",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("company_id", sa.String(length=36), nullable=False),
        sa.Column("correlation_id", sa.String(length=128), nullable=True),
        sa.Column("call_id", sa.String(length=100), nullable=True),
        sa.Column(
            "source",
            sa.Enum(
                "agent",
                "api",
                name="source",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("error_code", sa.String(length=64), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("service_id", sa.String(length=36), nullable=True),
        sa.Column("staff_id", sa.String(length=36), nullable=True),
        sa.Column("starts_at", shared.db.types.UTCDateTime(), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=False),
        sa.Column("created_at", shared.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_booking_failures_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_failures")),
    )
    with op.batch_alter_table("booking_failures", schema=None) as batch_op:
        batch_op.create_index(
            "ix_booking_failures_company_created", ["company_id", "created_at"], unique=False
        )
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_appointments_company_sync", ["company_id", "sync_status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("appointments", schema=None) as batch_op:
        batch_op.drop_index("ix_appointments_company_sync")
    op.drop_table("booking_failures")
