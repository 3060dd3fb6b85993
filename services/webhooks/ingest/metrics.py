"""`webhook_events_total{source,outcome}`: what became of each webhook delivery and event.

At ingestion (the routes in services/webhooks/ingest/api.py): received (stored, first
delivery), duplicate (a repeated delivery), rejected (401/400/413: nothing stored), error
(could not be stored).
In the worker (services/webhooks/jobs.py), counted after the outcome is committed: processed,
ignored, retried (a try failed, another follows), failed (the last try failed).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from prometheus_client import Counter

from shared.errors import AppError

INGEST_OUTCOMES: Final = ("received", "duplicate", "rejected", "error")
PROCESS_OUTCOMES: Final = ("processed", "ignored", "retried", "failed")

WEBHOOK_EVENTS = Counter(
    "webhook_events_total",
    "Webhook deliveries and events by source (calcom, retell) and outcome: received, duplicate, "
    "rejected, error at ingestion; processed, ignored, retried, failed in the worker.",
    ["source", "outcome"],
)


def count(source: str, outcome: str) -> None:
    WEBHOOK_EVENTS.labels(source, outcome).inc()


def count_delivery(source: str, created: bool) -> None:
    """A stored delivery: the first (received) or a repeat (duplicate)."""
    count(source, "received" if created else "duplicate")


@contextmanager
def refusals_counted(source: str) -> Iterator[None]:
    """Count a delivery that fails inside: rejected (a 4xx answer) or error (anything else)."""
    try:
        yield
    except AppError:
        count(source, "rejected")
        raise
    except Exception:
        count(source, "error")
        raise
