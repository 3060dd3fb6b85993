"""The alert rules and the Grafana dashboard (deploy/monitoring/) are valid, and every metric they
name is exported: a scripted workload (an agent booking, a slot taken, a refusal, the Cal.com
sync, a notification, a cancel, a webhook and its job, cache hits and misses, Cal.com failing
until the breaker opens) runs in-process, then the services' /metrics must hold a sample of
each name. Each step also checks what it counted."""

from __future__ import annotations

import json
import random
import re
import uuid
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import promql_parser
import pytest
import sqlalchemy as sa
import yaml
from arq.connections import ArqRedis, create_pool
from prometheus_client import REGISTRY

from services.booking.callbacks.metrics import refresh_overdue_callbacks
from services.booking.jobs import sync_appointment
from services.notifications.configs.queries import NAMESPACE as NOTIFICATION_CACHE
from services.notifications.jobs import notify
from services.webhooks.ingest.handling import job_id
from services.webhooks.jobs import process_webhook_event
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.hierarchy.cache import ConfigCache
from shared.jobs.queue import BOOKING_QUEUE, NOTIFY_QUEUE, WEBHOOKS_QUEUE, redis_settings
from shared.jobs.worker_metrics import instrument, refresh_queue_depth
from shared.models import Company, OutboxEvent, Service
from shared.redis.circuit_breaker import CircuitBreaker
from shared.redis.connection import redis_client
from shared.security.outbound import outbound_client
from tests.booking.agent_support import call_function, enable_retell
from tests.conftest import Services
from tests.support.factories import Salon, create_salon, next_weekday
from tests.support.fake_calcom import FakeCalcom
from tests.support.monitoring import (
    ALERTS,
    alert_rules,
    dashboard,
    dashboard_queries,
    exported,
    metric_names,
    missing,
    parse,
    referenced,
)
from tests.webhooks import CALCOM_SECRET, calcom_headers, load_json, set_calcom_secret

BERLIN = ZoneInfo("Europe/Berlin")
TEST_QUEUE = "arq:queue:metrics-test"
Key = tuple[str, dict[str, str]]


# --- the files ---------------------------------------------------------------------------------


def test_alert_rules_are_valid_prometheus_rule_groups() -> None:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    assert len({g["name"] for g in groups}) == len(groups) >= 4
    names = []
    for group in groups:
        assert group["rules"], group["name"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"]), rule["alert"]
            names.append(rule["alert"])
            parse(rule["expr"])  # raises on a syntax error or an unknown function
            if "for" in rule:
                assert promql_parser.parse_duration(rule["for"]) > timedelta(0)
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
            assert rule["annotations"]["summary"].strip(), rule["alert"]
    assert len(names) == len(set(names)), "alert names must be unique"


def test_alert_rules_carry_the_seeds_thresholds() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}

    def expr(name: str) -> str:
        return " ".join(rules[name]["expr"].split())

    def severity(name: str) -> str:
        return str(rules[name]["labels"]["severity"])

    assert severity("BookingSuccessRateCritical") == "critical"
    assert expr("BookingSuccessRateCritical").endswith(") < 0.90")
    assert severity("BookingSuccessRateLow") == "warning"
    assert expr("BookingSuccessRateLow").endswith(") < 0.95 >= 0.90")
    assert expr("LatencyP95Critical").startswith("histogram_quantile(0.95,")
    assert expr("LatencyP95Critical").endswith(") > 2")
    assert expr("LatencyP95High").endswith(") > 1.5 <= 2")
    assert (rules["CircuitBreakerOpen"]["for"], severity("CircuitBreakerOpen")) == (
        "30s",
        "critical",
    )
    assert ") > 0.20" in expr("CacheMissRateHigh")
    assert severity("CacheMissRateHigh") == "warning"
    assert {
        "CalcomSyncFailureSpike",
        "WebhookEventsFailing",
        "NotificationFailures",
        "CallbacksOverdue",
        "QueueBacklog",
    } <= set(rules)


def test_dashboard_has_the_three_sections_and_valid_queries() -> None:
    data = dashboard()
    assert data["uid"] == "appointments-overview"
    panels = data["panels"]
    rows = [p["title"] for p in panels if p["type"] == "row"]
    assert rows == ["Booking KPIs", "Performance", "Operations"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert ref_ids and len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            parse(target["expr"])
    assert len(dashboard_queries()) >= 25


def test_the_name_check_reports_names_that_are_not_exported() -> None:
    expr = (
        'sum by (le) (rate(a_bucket{x="y"}[$__rate_interval])) / on (z) group_left b_total > 0'
        " unless max(c) and histogram_quantile(0.9, rate(d_seconds_bucket[5m])) > 1"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "c", "d_seconds_bucket"}
    text = "# TYPE b counter\nb_total 1.0\n# TYPE c gauge\nc 2.0\n# TYPE nobody gauge\n"
    assert exported(text) == {"b_total", "c"}
    uses = {"b_total": {"alert X"}, "nobody": {"panel 'Y'"}, "a_bucket": {"alert X"}}
    assert missing(uses, exported(text)) == {"nobody": ["panel 'Y'"], "a_bucket": ["alert X"]}
    with pytest.raises(ValueError):
        parse("sum(rate(x_total[5m])")


# --- the workload ------------------------------------------------------------------------------


def sample(metric: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


def value(key: Key) -> float:
    return sample(key[0], **key[1])


class Deltas:
    """How much counter samples grow during a step."""

    def __init__(self, *keys: Key) -> None:
        self.keys = keys
        self.before = [value(key) for key in keys]

    def changes(self) -> list[float]:
        after = [value(key) for key in self.keys]
        return [a - b for a, b in zip(after, self.before, strict=True)]


def attempts(source: str, outcome: str) -> Key:
    return "booking_attempts_total", {"source": source, "outcome": outcome}


def slots_cache(outcome: str) -> Key:
    return "cache_requests_total", {"cache": "calcom_slots", "outcome": outcome}


def webhook_events(outcome: str) -> Key:
    return "webhook_events_total", {"source": "calcom", "outcome": outcome}


async def connect_calcom(db: Database, salon: Salon, fake: FakeCalcom) -> None:
    """Cal.com at the fake (open 09:00-18:00 Berlin daily), Retell, a Cal.com webhook secret."""
    event_type_id = random.randint(1_000_000, 9_000_000)
    host = f"host{event_type_id}@salon.example"
    fake.add_event_type(
        event_type_id, 30, host, time_zone="Europe/Berlin", hours=(dtime(9), dtime(18))
    )
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            sa.update(Company)
            .where(Company.id == salon.tenant.company_id)
            .values(calcom_api_key="cal_live_metrics", calcom_base_url=fake.url)
        )
        await session.execute(
            sa.update(Service)
            .where(Service.id == salon.service_id)
            .values(calcom_event_type_id=event_type_id)
        )
    await enable_retell(db, salon)
    await set_calcom_secret(db, salon.tenant.company_id, CALCOM_SECRET)


async def availability(booking: httpx.AsyncClient, salon: Salon, day: date) -> list[Any]:
    response = await booking.get(
        "/v1/availability",
        params={"service_id": salon.service_id, "date": day.isoformat()},
        headers=salon.headers,
    )
    assert response.status_code == 200, response.text
    slots: list[Any] = response.json()["slots"]
    return slots


async def outbox_row(db: Database, aggregate_id: str, queue: str) -> str:
    async with db.transaction(SYSTEM, write=False) as session:
        row = await session.scalar(
            sa.select(OutboxEvent.id)
            .where(OutboxEvent.aggregate_id == aggregate_id, OutboxEvent.queue == queue)
            .order_by(OutboxEvent.created_at)
            .limit(1)
        )
    assert row is not None, f"no {queue} outbox row for {aggregate_id}"
    return str(row)


def working_days(count: int, first: date) -> list[date]:
    days, day = [], first
    while len(days) < count:
        if day.weekday() < 6:
            days.append(day)
        day += timedelta(days=1)
    return days


def calcom_booking() -> bytes:
    body = load_json("calcom", "webhook-BOOKING_CREATED.example.json")
    body["payload"]["uid"] = f"metrics{uuid.uuid4().hex[:16]}"
    return json.dumps(body).encode()


async def book_and_refuse(booking: httpx.AsyncClient, salon: Salon, day: date) -> str:
    """The agent books 10:00; the API asks for the same staff at 10:00 (taken); the agent
    forgets the name (refused). The appointment id."""
    counted = Deltas(
        attempts("agent", "booked"), attempts("api", "slot_taken"), attempts("agent", "invalid")
    )
    args = {"service": "Herrenhaarschnitt", "date": day.isoformat(), "time": "10:00"}
    booked = await call_function(
        booking, salon, "book_appointment", {**args, "customer_name": "Max Muster"}
    )
    assert booked.json()["status"] == "booked", booked.text
    appointment_id = str(booked.json()["appointment_id"])
    shown = (await booking.get(f"/v1/appointments/{appointment_id}", headers=salon.headers)).json()
    taken = await booking.post(
        "/v1/appointments",
        json={
            "service_id": salon.service_id,
            "staff_id": shown["staff_id"],
            "start": datetime.combine(day, dtime(10), BERLIN).isoformat(),
            "customer": {"name": "Erika Muster", "phone": "+491709999999"},
        },
        headers=salon.headers,
    )
    assert (taken.status_code, taken.json()["code"]) == (409, "slot_taken")
    refused = await call_function(booking, salon, "book_appointment", args)
    assert refused.json()["status"] == "invalid_request"
    assert counted.changes() == [1.0, 1.0, 1.0]
    return appointment_id


async def run_worker_jobs(
    db: Database, settings: Settings, pool: ArqRedis, http: httpx.AsyncClient, appointment: str
) -> None:
    """The booking worker's Cal.com sync, then the notifications worker's confirmation (no
    channel configured: the SMS to the caller fails for good), instrumented as the workers'."""
    sync_job, notify_job = instrument(
        [sync_appointment, notify], TEST_QUEUE, max_tries=5, job_timeout_s=30
    )
    ctx = {"db": db, "settings": settings, "redis": pool, "http": http, "job_try": 1}
    success = {"queue": TEST_QUEUE, "job": "sync_appointment", "outcome": "success"}
    counted = Deltas(("calcom_sync_total", {"outcome": "synced"}), ("jobs_total", success))
    assert await sync_job(ctx, await outbox_row(db, appointment, BOOKING_QUEUE)) == "synced"
    assert counted.changes() == [1.0, 1.0]
    sms = Deltas(("notifications_total", {"channel": "sms", "outcome": "failed"}))
    redis = redis_client(settings=settings)
    try:
        cache = ConfigCache(redis, NOTIFICATION_CACHE)
        notify_ctx = {**ctx, "adapters": {}, "notification_cache": cache}
        outcome = await notify_job(notify_ctx, await outbox_row(db, appointment, NOTIFY_QUEUE))
    finally:
        await redis.aclose()
    assert "failed" in outcome.split(",")
    assert sms.changes() == [1.0]


async def webhook_delivery(
    services: Services, db: Database, settings: Settings, pool: ArqRedis, company_id: str
) -> None:
    """A Cal.com delivery stored, repeated and forged; the worker's job on the stored event."""
    hooks = services.clients["webhooks"]
    url, raw = f"/v1/webhooks/calcom/{company_id}", calcom_booking()
    counted = Deltas(
        webhook_events("received"), webhook_events("duplicate"), webhook_events("rejected")
    )
    first = await hooks.post(url, content=raw, headers=calcom_headers(raw))
    again = await hooks.post(url, content=raw, headers=calcom_headers(raw))
    forged = await hooks.post(url, content=raw, headers=calcom_headers(raw, "not-the-secret"))
    assert [first.status_code, again.status_code, forged.status_code] == [202, 200, 401]
    assert counted.changes() == [1.0, 1.0, 1.0]
    event_id = first.json()["event_id"]
    assert await refresh_queue_depth(pool, WEBHOOKS_QUEUE) >= 1  # its job waits there
    await pool.zrem(WEBHOOKS_QUEUE, job_id(event_id))
    await pool.delete(f"arq:job:{job_id(event_id)}")
    [job] = instrument([process_webhook_event], TEST_QUEUE, max_tries=5, job_timeout_s=30)
    before = {outcome: value(webhook_events(outcome)) for outcome in ("processed", "ignored")}
    ctx = {"db": db, "settings": settings, "redis": pool, "job_try": 1}
    status = await job(ctx, event_id)
    assert status in before
    assert value(webhook_events(status)) - before[status] == 1.0


async def calcom_fails(
    booking: httpx.AsyncClient, salon: Salon, fake: FakeCalcom, pool: ArqRedis, day: date
) -> None:
    """Cal.com answers 503 to slot lookups of six new days: five fallbacks open the breaker,
    the sixth lookup does not even ask; the local calendar answers throughout."""
    breaker = f"calcom:{salon.tenant.company_id}"
    counted = Deltas(
        ("calcom_availability_fallback_total", {"reason": "unavailable"}),
        ("calcom_availability_fallback_total", {"reason": "circuit_open"}),
        ("circuit_breaker_transitions_total", {"name": "calcom", "to": "open"}),
    )
    fake.control(status_override=503, match="GET /v2/slots")
    for other_day in working_days(6, day + timedelta(days=1)):
        assert await availability(booking, salon, other_day)
    assert counted.changes() == [5.0, 1.0, 1.0]
    # Labelled by kind, never by the company's breaker name (ADR 0013).
    assert sample("circuit_breaker_state", name="calcom") == 2.0
    await CircuitBreaker(pool, breaker).reset()


async def test_every_metric_the_rules_and_dashboard_name_is_exported(
    services: Services, db: Database, settings: Settings
) -> None:
    booking = services.clients["booking"]
    salon = await create_salon(db)
    day = next_weekday(1, at_least_days=4)
    pool = await create_pool(redis_settings(settings))
    try:
        async with (
            FakeCalcom() as fake,
            outbound_client(settings, timeout=httpx.Timeout(10.0)) as http,
        ):
            await connect_calcom(db, salon, fake)
            # Cal.com's slots of the day are fetched and cached on the first ask, read after.
            cache = Deltas(slots_cache("miss"), slots_cache("hit"))
            first = await availability(booking, salon, day)
            assert await availability(booking, salon, day) == first
            assert cache.changes() == [1.0, 1.0]
            appointment = await book_and_refuse(booking, salon, day)
            await run_worker_jobs(db, settings, pool, http, appointment)
            cancelled = await booking.post(
                f"/v1/appointments/{appointment}/cancel", json={}, headers=salon.headers
            )
            assert cancelled.status_code == 200, cancelled.text  # asked the policy service
            await webhook_delivery(services, db, settings, pool, salon.tenant.company_id)
            await calcom_fails(booking, salon, fake, pool, day)
        await refresh_overdue_callbacks({"db": db})
    finally:
        await pool.aclose()

    names: set[str] = set()
    for name, client in services.clients.items():
        assert (await client.get("/health/ready")).status_code == 200  # sets dependency_up
        response = await client.get("/metrics")
        assert response.status_code == 200
        found = exported(response.text)
        assert "http_request_duration_seconds_bucket" in found, name
        names |= found
    uses = referenced()
    assert len(uses) >= 20
    assert missing(uses, names) == {}
