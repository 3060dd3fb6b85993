"""`booking_attempts_total{source,outcome}`: every attempt to book, counted where it is decided.

`source` is the booking's source (agent, api). `outcome`:
- booked: a new appointment; counted only once its transaction has committed;
- duplicate: the same customer's identical booking already existed and was returned again;
- slot_taken: the time is taken (alternatives offered);
- invalid: the request cannot be booked as asked (past, outside the hours, unknown service,
  a missing name or phone the agent must ask for);
- policy_refused: a business rule refused it;
- error: the system could not decide (a dependency down, a concurrent change, a bug).

slot_taken, invalid and policy_refused are answers, not failures: the alert rules' success rate
is (booked + duplicate) / (booked + duplicate + error).
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.engine import after_commit
from shared.errors import InvalidInput, NotFound, PolicyViolation, SlotTaken

OUTCOMES: Final = ("booked", "duplicate", "slot_taken", "invalid", "policy_refused", "error")

BOOKING_ATTEMPTS = Counter(
    "booking_attempts_total",
    "Booking attempts by source (agent, api) and outcome (booked, duplicate, slot_taken, "
    "invalid, policy_refused, error); booked counts after the commit.",
    ["source", "outcome"],
)


def outcome_of(error: BaseException) -> str:
    """The outcome label of a booking attempt that ended with `error`."""
    if isinstance(error, SlotTaken):
        return "slot_taken"
    if isinstance(error, InvalidInput | NotFound):
        return "invalid"
    if isinstance(error, PolicyViolation):
        return "policy_refused"
    return "error"


def count(source: str, outcome: str) -> None:
    BOOKING_ATTEMPTS.labels(source, outcome).inc()


def count_refused(source: str, error: BaseException) -> None:
    """An attempt that ended with `error` (its transaction is rolled back)."""
    count(source, outcome_of(error))


def count_after_commit(session: AsyncSession, source: str, outcome: str) -> None:
    """Count `outcome` once `session`'s transaction commits; a rollback counts nothing."""

    async def _count() -> None:
        count(source, outcome)

    after_commit(session, _count)
