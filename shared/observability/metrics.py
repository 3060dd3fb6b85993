"""Prometheus metrics shared by all services; `/metrics` serves them in text format.

Metrics of one domain live beside the code that counts them (`booking_attempts_total` in
services/booking/appointments/metrics.py, `jobs_total` in shared/jobs/worker_metrics.py, ...); the
alert rules and the dashboard in deploy/monitoring/ name only metrics exported somewhere.
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by service, route template, method and status.",
    ["service", "route", "method", "status"],
    # 1.5 and 2.0: the p95 warning and critical thresholds of the alert rules.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 5.0),
)
REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests by service, route, method, status.",
    ["service", "route", "method", "status"],
)
# Labels are bounded enums, never identifiers: the route *template* (`/v1/appointments/{id}`,
# "unmatched" for a path no route has), a known method, the status. /metrics is scraped by
# whoever reaches the port, so no company id, phone number or key may show up in it.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CACHE_REQUESTS = Counter(
    "cache_requests_total",
    "Cache lookups by cache (policy, notification, calcom_slots) and outcome (hit, miss, error).",
    ["cache", "outcome"],
)
# Booking attempts the system had to refuse before anything could be recorded in the database
# (docs/adr/0019): source agent|api, reason database_unavailable. The ops view's count of the
# same lives in Redis (services/booking/ops/overview.py); no company in the labels.
BOOKING_REFUSED = Counter(
    "booking_refused_total",
    "Booking attempts refused unrecorded, by source (agent, api) and reason "
    "(database_unavailable).",
    ["source", "reason"],
)
# Exported at 0 from the start, so `rate()` and the alert see the first refusal.
for _source in ("agent", "api"):
    BOOKING_REFUSED.labels(_source, "database_unavailable")


class MetricsMiddleware:
    """Times every request, labelled by the matched route template (not the raw path)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            labels = (self.service, template, method if method in METHODS else "other", str(status))
            REQUEST_LATENCY.labels(*labels).observe(time.perf_counter() - start)
            REQUESTS.labels(*labels).inc()


async def metrics_endpoint(_request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
