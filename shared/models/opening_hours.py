"""A branch's weekly opening hours and its closed days (holidays included)."""

from __future__ import annotations

from datetime import date, time

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.types import StrEnum
from shared.models.base import Base, IdMixin, TenantMixin, TimestampMixin

CLOSED_DAY_SOURCES = ("manual", "holidays")


class BranchOpeningHours(IdMixin, TenantMixin, TimestampMixin, Base):
    """One opening interval of a branch on a weekday (0 = Monday), branch-local time.

    A branch without any row has no opening hours configured: staff hours alone decide."""

    __tablename__ = "branch_opening_hours"
    __table_args__ = (
        sa.Index("ix_branch_opening_hours_branch_weekday", "branch_id", "weekday", "start_time"),
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),
        sa.CheckConstraint("end_time > start_time", name="end_after_start"),
    )

    branch_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("branches.id", ondelete="CASCADE")
    )
    weekday: Mapped[int] = mapped_column(sa.Integer)
    start_time: Mapped[time] = mapped_column(sa.Time)
    end_time: Mapped[time] = mapped_column(sa.Time)


class BranchClosedDay(IdMixin, TenantMixin, TimestampMixin, Base):
    """A local date on which the branch is closed all day (manual, or a public holiday)."""

    __tablename__ = "branch_closed_days"
    __table_args__ = (sa.UniqueConstraint("branch_id", "day"),)

    branch_id: Mapped[str] = mapped_column(
        sa.String(36), sa.ForeignKey("branches.id", ondelete="CASCADE")
    )
    day: Mapped[date] = mapped_column(sa.Date)
    name: Mapped[str] = mapped_column(sa.String(200))
    source: Mapped[str] = mapped_column(
        StrEnum(*CLOSED_DAY_SOURCES, name="source"), default="manual"
    )
