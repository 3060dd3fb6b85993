"""retell agents unique across companies

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 07:00:00+00:00

Calls are routed to a tenant by `call.agent_id` as well as by the called number. Numbers were
already unique across companies; agent ids were only indexed. `retell_agents` holds one row
per agent id (UNIQUE) with the company that claimed it, and `phone_numbers` names its agent
through the composite foreign key (company_id, retell_agent_id) -> retell_agents(company_id,
agent_id): a number can only use an agent of its own company, and no agent belongs to two.

Backfill: every (company, agent id) in use gets its row. Should an agent id be in use by
several companies (possible only through a race past the old application check), the
company whose number took it first keeps it and the other companies' numbers lose the agent
id (their calls still route by number); the count is printed.
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import shared.db.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FK = "fk_phone_numbers_retell_agent_retell_agents"
_INDEX = "ix_phone_numbers_company_id_retell_agent_id"


def _backfill() -> None:
    bind = op.get_bind()
    phone_numbers = sa.table(
        "phone_numbers",
        sa.column("company_id", sa.String),
        sa.column("retell_agent_id", sa.String),
        sa.column("created_at", shared.db.types.UTCDateTime()),
    )
    rows = bind.execute(
        sa.select(
            phone_numbers.c.retell_agent_id,
            phone_numbers.c.company_id,
            sa.func.min(phone_numbers.c.created_at).label("first"),
        )
        .where(phone_numbers.c.retell_agent_id.is_not(None))
        .group_by(phone_numbers.c.retell_agent_id, phone_numbers.c.company_id)
        .order_by(phone_numbers.c.retell_agent_id, sa.text("first"), phone_numbers.c.company_id)
    ).all()
    claimed: dict[str, str] = {}
    for agent_id, company_id, _first in rows:
        claimed.setdefault(agent_id, company_id)
    dropped = 0
    for agent_id, company_id, _first in rows:
        if claimed[agent_id] != company_id:
            dropped += bind.execute(
                sa.update(phone_numbers)
                .where(
                    phone_numbers.c.retell_agent_id == agent_id,
                    phone_numbers.c.company_id == company_id,
                )
                .values(retell_agent_id=None)
            ).rowcount
    if dropped:
        print(f"0008: {dropped} phone number(s) lost an agent id another company claimed first")
    now = datetime.now(UTC)
    agents = sa.table(
        "retell_agents",
        sa.column("id", sa.String),
        sa.column("company_id", sa.String),
        sa.column("agent_id", sa.String),
        sa.column("created_at", shared.db.types.UTCDateTime()),
        sa.column("updated_at", shared.db.types.UTCDateTime()),
    )
    if claimed:
        op.bulk_insert(
            agents,
            [
                {
                    "id": str(uuid.uuid4()),
                    "company_id": company_id,
                    "agent_id": agent_id,
                    "created_at": now,
                    "updated_at": now,
                }
                for agent_id, company_id in claimed.items()
            ],
        )


def upgrade() -> None:
    op.create_table(
        "retell_agents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("company_id", sa.String(length=36), nullable=False),
        sa.Column("agent_id", sa.String(length=100), nullable=False),
        sa.Column("created_at", shared.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", shared.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_retell_agents_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retell_agents")),
        sa.UniqueConstraint("agent_id", name=op.f("uq_retell_agents_agent_id")),
        sa.UniqueConstraint(
            "company_id", "agent_id", name=op.f("uq_retell_agents_company_id_agent_id")
        ),
    )
    with op.batch_alter_table("retell_agents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_retell_agents_company_id"), ["company_id"], unique=False
        )
    _backfill()
    with op.batch_alter_table("phone_numbers", schema=None) as batch_op:
        batch_op.create_index(_INDEX, ["company_id", "retell_agent_id"], unique=False)
        batch_op.create_foreign_key(
            _FK,
            "retell_agents",
            ["company_id", "retell_agent_id"],
            ["company_id", "agent_id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("phone_numbers", schema=None) as batch_op:
        batch_op.drop_constraint(_FK, type_="foreignkey")
        batch_op.drop_index(_INDEX)
    with op.batch_alter_table("retell_agents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_retell_agents_company_id"))
    op.drop_table("retell_agents")
