"""Booking rules configurable per company and refined per branch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from shared.models import Branch, Company


@dataclass(frozen=True)
class BookingRules:
    min_notice: timedelta
    window_days: int


def rules_for(company: Company, branch: Branch) -> BookingRules:
    """The branch's minimum notice and booking window, else the company's."""
    notice = branch.min_notice_minutes
    window = branch.booking_window_days
    return BookingRules(
        min_notice=timedelta(minutes=company.min_notice_minutes if notice is None else notice),
        window_days=company.booking_window_days if window is None else window,
    )
