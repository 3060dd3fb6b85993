"""SQLite locked for longer than the busy timeout (issue 14, ADR 0019): another process holds
the write lock; every request that must write waits SQLITE_BUSY_TIMEOUT_MS and is then refused
cleanly, 503 problem+json `database_unavailable` with Retry-After (the agent: 200 and a
sentence), never a 500; reads go on. A lock released within the busy timeout costs a wait,
not a refusal. SQLite only (its own migrated file): MariaDB's outage is test_database_outage.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from prometheus_client import REGISTRY

from shared.config import Settings
from shared.db.engine import Database
from tests.booking.agent_support import call_function, enable_retell
from tests.conftest import Services
from tests.faults.mariadb_support import leave_queues_as_found
from tests.faults.report import record_fault
from tests.support.factories import Salon, create_salon
from tests.support.migrations import migrate
from tests.webhooks import CALCOM_SECRET, calcom_headers, set_calcom_secret
from tests.webhooks.test_ingest_calcom import body_with

__all__ = ["leave_queues_as_found"]  # a fixture of mariadb_support
pytestmark = pytest.mark.usefixtures("leave_queues_as_found")
BERLIN = ZoneInfo("Europe/Berlin")
BUSY_TIMEOUT_MS = 300


@pytest.fixture(scope="module")
async def sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-locked") / "locked.db"
    await migrate(f"sqlite+aiosqlite:///{path}", "upgrade", "head")
    return path


@pytest.fixture(scope="module")
def locked_settings(sqlite_file: Path, redis_url: str) -> Settings:
    return Settings(
        environment="test",
        database_url=f"sqlite+aiosqlite:///{sqlite_file}",
        redis_url=redis_url,
        log_json=False,
        log_level="WARNING",
        sqlite_busy_timeout_ms=BUSY_TIMEOUT_MS,
        auth_cache_ttl_s=300.0,
    )


@pytest.fixture(scope="module")
async def sqlite_db(locked_settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings=locked_settings)
    yield database
    await database.dispose()


@pytest.fixture(scope="module")
async def apps(locked_settings: Settings) -> AsyncIterator[Services]:
    async with Services(locked_settings) as running:
        yield running


class WriteLock:
    """Another process's write transaction: BEGIN IMMEDIATE on a connection of our own."""

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None, timeout=5)
        self.held = False

    def __enter__(self) -> WriteLock:
        self.connection.execute("BEGIN IMMEDIATE")
        self.held = True
        return self

    def release(self) -> None:
        if self.held:
            self.held = False
            self.connection.execute("ROLLBACK")
            self.connection.close()

    def __exit__(self, *exc: object) -> None:
        self.release()


@pytest.fixture
async def salon(apps: Services, sqlite_db: Database) -> Salon:
    """A salon whose API key and Cal.com secret are warm in the apps' caches."""
    salon = await create_salon(sqlite_db)
    await enable_retell(sqlite_db, salon)
    await set_calcom_secret(sqlite_db, salon.tenant.company_id, CALCOM_SECRET)
    booking = apps.clients["booking"]
    assert (await booking.get("/v1/appointments", headers=salon.headers)).is_success
    raw = json.dumps(body_with(f"warm-{salon.tenant.company_id[:8]}")).encode()
    path = f"/v1/webhooks/calcom/{salon.tenant.company_id}"
    assert (
        await apps.clients["webhooks"].post(path, content=raw, headers=calcom_headers(raw))
    ).status_code == 202
    return salon


def booking_body(salon: Salon, hour: int) -> dict[str, Any]:
    day = next(
        d for d in (date.today() + timedelta(days=n) for n in range(3, 10)) if d.weekday() < 5
    )
    return {
        "service_id": salon.service_id,
        "staff_id": salon.staff_ids[0],
        "start": datetime(day.year, day.month, day.day, hour, tzinfo=BERLIN).isoformat(),
        "customer": {"name": "Lena Lock", "phone": "+4915100000009"},
    }


def assert_refused(response: httpx.Response, what: str) -> None:
    assert response.status_code == 503, (what, response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json", what
    assert response.headers.get("retry-after") == "2", what
    assert response.json()["code"] == "database_unavailable", what


def clean(response: httpx.Response) -> bool:
    return (
        response.status_code == 503
        and response.headers.get("content-type") == "application/problem+json"
        and response.headers.get("retry-after") == "2"
        and response.json().get("code") == "database_unavailable"
    )


def refused_metric(source: str) -> float:
    labels = {"source": source, "reason": "database_unavailable"}
    return REGISTRY.get_sample_value("booking_refused_total", labels) or 0.0


async def test_a_write_lock_held_past_the_busy_timeout_is_a_clean_refusal(
    apps: Services, salon: Salon, sqlite_file: Path
) -> None:
    booking, policy = apps.clients["booking"], apps.clients["policy"]
    webhooks, notifications = apps.clients["webhooks"], apps.clients["notifications"]
    company = salon.tenant.company_id
    before = {source: refused_metric(source) for source in ("api", "agent")}
    with WriteLock(sqlite_file) as lock:
        started = time.monotonic()
        refused = await booking.post(
            "/v1/appointments", json=booking_body(salon, 10), headers=salon.headers
        )
        waited = time.monotonic() - started
        raw = json.dumps(body_with(f"locked-{company[:8]}")).encode()
        delivery = await webhooks.post(
            f"/v1/webhooks/calcom/{company}", content=raw, headers=calcom_headers(raw)
        )
        config = await policy.put(
            f"/v1/policies/company/{company}/cancellation",
            json={"hours_before": 24},
            headers=salon.headers,
        )
        notification = await notifications.put(
            f"/v1/notification-configs/company/{company}/booking_confirmed/email",
            json={"enabled": False},
            headers=salon.headers,
        )
        spoken = await call_function(
            booking,
            salon,
            "book_appointment",
            {
                "service": "Herrenhaarschnitt",
                "date": "2030-01-07",
                "time": "10:00",
                "customer_name": "Lena Lock",
            },
        )
        # Reads need no write lock (WAL): they are served meanwhile.
        listed = await booking.get("/v1/appointments", headers=salon.headers)
        lock.release()
        released = time.monotonic()
        # The lock is gone: the same booking goes through.
        again = await booking.post(
            "/v1/appointments", json=booking_body(salon, 10), headers=salon.headers
        )
        again_s = time.monotonic() - released
    writes = [refused, delivery, config, notification]
    answers = [*writes, spoken, listed, again]
    callback_offered = spoken.status_code == 200 and spoken.json()["status"] == "needs_callback"
    record_fault(
        "SQLite write lock held past the busy timeout (0.3 s)",
        sent=len(answers),
        accepted=len([a for a in (listed, again) if a.is_success]),
        refused=len([w for w in writes if clean(w)]) + int(callback_offered),
        errors_500=len([a for a in answers if a.status_code >= 500 and not clean(a)]),
        lost=0 if again.status_code != 201 or await stored(apps, salon, again) else 1,
        duplicated=double_booked(sqlite_file, company),
        recover_s=again_s,
        note="under the lock: booking, Cal.com delivery (lean), policy and notification "
        "config writes: 503 database_unavailable + Retry-After; the agent: 200 and a callback "
        "offer (counted as a refusal); a read: 200; time: lock released -> booking 201",
    )
    assert_refused(refused, "booking")
    # The busy timeout (0.3 s) was waited, not the default 15 s.
    assert BUSY_TIMEOUT_MS / 1000 <= waited < 5, waited
    assert_refused(delivery, "Cal.com delivery (lean)")
    assert_refused(config, "policy config")
    assert_refused(notification, "notification config")
    assert spoken.status_code == 200, spoken.text
    assert callback_offered, spoken.text
    assert listed.status_code == 200, listed.text
    assert again.status_code == 201, again.text
    # Each refused booking counted once (the API's company from its warm key), none recorded.
    assert refused_metric("api") - before["api"] == 1
    assert refused_metric("agent") - before["agent"] == 1
    view = await booking.get("/v1/ops/overview", headers=salon.headers)
    assert view.json()["refused_unrecorded_today"] == 1
    assert view.json()["bookings_today"]["failed"] == 0


def double_booked(path: Path, company_id: str) -> int:
    """Appointments beyond the first on one (staff, start) of the company."""
    connection = sqlite3.connect(path)
    try:
        counts = connection.execute(
            "SELECT COUNT(*) FROM appointments WHERE company_id = ? GROUP BY staff_id, starts_at",
            (company_id,),
        ).fetchall()
    finally:
        connection.close()
    return sum(count - 1 for (count,) in counts)


async def stored(apps: Services, salon: Salon, made: httpx.Response) -> bool:
    """The acknowledged booking can be read back."""
    got = await apps.clients["booking"].get(
        f"/v1/appointments/{made.json()['id']}", headers=salon.headers
    )
    return got.status_code == 200


async def test_a_lock_released_within_the_busy_timeout_costs_a_wait_not_a_refusal(
    apps: Services, salon: Salon, sqlite_file: Path
) -> None:
    with WriteLock(sqlite_file) as lock:
        asyncio.get_running_loop().call_later(0.1, lock.release)
        started = time.monotonic()
        made = await apps.clients["booking"].post(
            "/v1/appointments", json=booking_body(salon, 11), headers=salon.headers
        )
    took_s = time.monotonic() - started
    record_fault(
        "SQLite write lock released within the busy timeout (after 0.1 s)",
        sent=1,
        accepted=int(made.status_code == 201),
        refused=int(made.status_code == 503),
        errors_500=int(made.status_code >= 500 and made.status_code != 503),
        lost=0 if made.status_code != 201 or await stored(apps, salon, made) else 1,
        duplicated=double_booked(sqlite_file, salon.tenant.company_id),
        recover_s=took_s,
        note="a booking sent while locked waits and succeeds; time: sent -> 201",
    )
    assert made.status_code == 201, made.text
    assert took_s >= 0.1
