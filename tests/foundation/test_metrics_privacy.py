"""/metrics exposes no identifiers: two companies drive requests with ids in their paths (and
phone numbers in paths and queries), one company's Cal.com breaker opens, then the /metrics of
all four apps and a worker's metrics port are scraped: no company id, appointment id, phone
number or API key prefix appears, and every label value of the request metrics is bounded.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
from prometheus_client.parser import text_string_to_metric_families

from shared.db.engine import Database
from shared.jobs.worker_metrics import serve
from shared.redis.circuit_breaker import CircuitBreaker
from shared.redis.connection import free_port, redis_client
from shared.security.api_keys import parse_key
from tests.conftest import Services
from tests.support.factories import Salon, create_salon, next_weekday

BERLIN = ZoneInfo("Europe/Berlin")
PHONE = "+4915112345678"
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}


async def book(services: Services, salon: Salon, hour: int) -> str:
    day = next_weekday(2, at_least_days=5)
    response = await services.clients["booking"].post(
        "/v1/appointments",
        json={
            "service_id": salon.service_id,
            "staff_id": salon.staff_ids[0],
            "start": datetime(day.year, day.month, day.day, hour, tzinfo=BERLIN).isoformat(),
            "customer": {"name": "Erika Musterfrau", "phone": PHONE},
        },
        headers=salon.headers,
    )
    assert response.status_code == 201, response.text
    appointment_id: str = response.json()["id"]
    return appointment_id


async def drive(services: Services, salon: Salon, appointment_id: str) -> None:
    """Requests whose raw paths carry ids and phone numbers, answered 200, 404, 401, 405."""
    company = salon.tenant.company_id
    booking = services.clients["booking"]
    headers = salon.headers
    assert (await booking.get(f"/v1/appointments/{appointment_id}", headers=headers)).is_success
    assert (await booking.get(f"/v1/appointments/{uuid.uuid4()}", headers=headers)).status_code
    await booking.get("/v1/appointments", params={"phone": PHONE}, headers=headers)
    await booking.get(f"/v1/admin/staff/{salon.staff_ids[0]}", headers=headers)
    await booking.get(f"/v1/customers/{PHONE}", headers=headers)
    await booking.get(f"/v1/no-such/{company}/{PHONE}")
    await booking.request("PROPFIND", f"/v1/appointments/{appointment_id}")
    await services.clients["policy"].get(
        f"/v1/policies/company/{company}/cancellation", headers=headers
    )
    await services.clients["webhooks"].post(f"/v1/webhooks/calcom/{company}", content=b"{}")
    await services.clients["webhooks"].post(f"/v1/webhooks/events/{appointment_id}/replay")
    await services.clients["notifications"].get(
        "/v1/notifications/deliveries", params={"appointment_id": appointment_id}, headers=headers
    )
    await services.clients["notifications"].get(f"/v1/notification-configs/company/{company}")


def secrets_of(salon: Salon, appointment_id: str) -> list[str]:
    prefix = parse_key(salon.tenant.admin_key)
    assert prefix is not None
    return [salon.tenant.company_id, appointment_id, prefix, PHONE, PHONE.removeprefix("+")]


def bounded_labels(text: str) -> None:
    """Every http_requests_total sample: a known service, a route template, a known method."""
    for family in text_string_to_metric_families(text):
        if family.name != "http_requests":
            continue
        for sample in family.samples:
            route, method = sample.labels["route"], sample.labels["method"]
            assert method in METHODS, sample
            assert route == "unmatched" or route.startswith("/"), sample
            assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", route), sample


async def test_metrics_of_every_app_and_a_worker_hold_no_identifiers(
    services: Services, db: Database
) -> None:
    first, second = await create_salon(db), await create_salon(db)
    appointments = {
        first.tenant.company_id: await book(services, first, 10),
        second.tenant.company_id: await book(services, second, 11),
    }
    for salon in (first, second):
        await drive(services, salon, appointments[salon.tenant.company_id])
    redis = redis_client(settings=services.apps["booking"].state.settings)
    breaker = CircuitBreaker(redis, f"calcom:{first.tenant.company_id}", failure_threshold=2)
    try:
        for _ in range(2):
            try:
                async with breaker.guard():
                    raise RuntimeError("Cal.com down")
            except RuntimeError:
                pass
        assert await breaker.state() == "open"

        scraped = {}
        for name, client in services.clients.items():
            answer = await client.get("/metrics")
            assert answer.status_code == 200
            scraped[name] = answer.text
        port = free_port()
        server = serve("127.0.0.1", port)
        assert server is not None
        try:
            async with httpx.AsyncClient() as http:
                scraped["worker"] = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        finally:
            httpd, thread = server
            await asyncio.to_thread(httpd.shutdown)
            httpd.server_close()
            thread.join(timeout=1.0)
    finally:
        await breaker.reset()
        await redis.aclose()

    assert 'circuit_breaker_state{name="calcom"} 2.0' in scraped["booking"]
    assert 'route="/v1/appointments/{appointment_id}"' in scraped["booking"]
    assert 'route="unmatched"' in scraped["booking"]
    assert 'method="other"' in scraped["booking"]
    for name, text in scraped.items():
        bounded_labels(text)
        for salon in (first, second):
            for secret in secrets_of(salon, appointments[salon.tenant.company_id]):
                assert secret not in text, f"{secret!r} in the /metrics of {name}"


async def test_breakers_of_one_kind_share_series_and_report_the_worst_state(
    services: Services,
) -> None:
    from prometheus_client import REGISTRY

    kind = f"kind{uuid.uuid4().hex[:8]}"

    def sample(metric: str) -> float | None:
        return REGISTRY.get_sample_value(metric, {"name": kind})

    redis = redis_client(settings=services.apps["booking"].state.settings)
    first = CircuitBreaker(redis, f"{kind}:{uuid.uuid4()}", failure_threshold=1)
    second = CircuitBreaker(redis, f"{kind}:{uuid.uuid4()}", failure_threshold=1)
    try:
        for breaker in (first, second):
            try:
                async with breaker.guard():
                    raise RuntimeError("down")
            except RuntimeError:
                pass
        assert (sample("circuit_breaker_state"), sample("circuit_breakers_not_closed")) == (2, 2)
        assert (
            REGISTRY.get_sample_value(
                "circuit_breaker_transitions_total", {"name": kind, "to": "open"}
            )
            == 2
        )
        await first.reset()
        assert (sample("circuit_breaker_state"), sample("circuit_breakers_not_closed")) == (2, 1)
        await second.reset()
        assert (sample("circuit_breaker_state"), sample("circuit_breakers_not_closed")) == (0, 0)
        assert REGISTRY.get_sample_value("circuit_breaker_state", {"name": first.name}) is None
    finally:
        await first.reset()
        await second.reset()
        await redis.aclose()
