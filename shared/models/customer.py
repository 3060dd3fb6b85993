"""Callers and the inbound numbers that route them to a tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.types import UTCDateTime
from shared.models.base import Base, IdMixin, TenantMixin, TimestampMixin


class Customer(IdMixin, TenantMixin, TimestampMixin, Base):
    """A customer, identified within a company by the phone number in E.164.

    `phone` is NULL only for customers who booked directly in Cal.com without giving a phone
    number; they are identified by `email` (UNIQUE ignores NULLs on both backends).
    """

    __tablename__ = "customers"
    __table_args__ = (sa.UniqueConstraint("company_id", "phone"),)

    name: Mapped[str] = mapped_column(sa.String(200))
    phone: Mapped[str | None] = mapped_column(sa.String(20))
    email: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    language: Mapped[str] = mapped_column(sa.String(5), default="de")
    notes: Mapped[str | None] = mapped_column(sa.Text)
    # Set by the DSGVO erasure (docs/adr/0015): the row is then an anonymous placeholder that
    # keeps the customer's appointments countable.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RetellAgent(IdMixin, TenantMixin, TimestampMixin, Base):
    """A Retell agent id claimed by one company. Calls are routed by agent id, so an id is
    unique across all companies; a phone number names its agent with its own company_id
    (composite foreign key), so no number can point at another company's agent. A claim no
    number uses any more may be taken over (services/booking/admin/resources.py)."""

    __tablename__ = "retell_agents"
    __table_args__ = (sa.UniqueConstraint("company_id", "agent_id"),)

    agent_id: Mapped[str] = mapped_column(sa.String(100), unique=True)


class PhoneNumber(IdMixin, TenantMixin, TimestampMixin, Base):
    """An inbound number: routes calls to a company and, unless it is a hotline, one branch."""

    __tablename__ = "phone_numbers"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["company_id", "retell_agent_id"],
            ["retell_agents.company_id", "retell_agents.agent_id"],
            name="fk_phone_numbers_retell_agent_retell_agents",
        ),
        sa.Index("ix_phone_numbers_company_id_retell_agent_id", "company_id", "retell_agent_id"),
    )

    number: Mapped[str] = mapped_column(sa.String(20), unique=True)
    branch_id: Mapped[str | None] = mapped_column(
        sa.String(36), sa.ForeignKey("branches.id", ondelete="CASCADE"), index=True
    )
    label: Mapped[str | None] = mapped_column(sa.String(100))
    retell_agent_id: Mapped[str | None] = mapped_column(sa.String(100), index=True)
    active: Mapped[bool] = mapped_column(sa.Boolean, default=True)


class Call(IdMixin, TenantMixin, TimestampMixin, Base):
    """A phone call handled by the Retell agent, upserted by Retell's call id."""

    __tablename__ = "calls"

    retell_call_id: Mapped[str] = mapped_column(sa.String(100), unique=True)
    agent_id: Mapped[str | None] = mapped_column(sa.String(100))
    branch_id: Mapped[str | None] = mapped_column(
        sa.String(36), sa.ForeignKey("branches.id", ondelete="SET NULL"), index=True
    )
    customer_id: Mapped[str | None] = mapped_column(
        sa.String(36), sa.ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    from_number: Mapped[str | None] = mapped_column(sa.String(20))
    to_number: Mapped[str | None] = mapped_column(sa.String(20))
    direction: Mapped[str] = mapped_column(sa.String(10), default="inbound")
    status: Mapped[str] = mapped_column(sa.String(30), default="registered")
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration_ms: Mapped[int | None] = mapped_column(sa.Integer)
    disconnection_reason: Mapped[str | None] = mapped_column(sa.String(100))
    transcript: Mapped[str | None] = mapped_column(sa.Text)
    analysis: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
