"""A real MariaDB outage (issue 14, item 4; ADR 0019): a second `mariadbd` of our own, the four
apps on it, steady bookings, and the server stopped (SIGTERM) or killed (SIGKILL) and started
again on the same port and data.

During the outage every request is refused cleanly: 503 problem+json `database_unavailable`
with Retry-After on all four services, FastAPI routes and lean routes (raw pool) alike, and
200 with a callback offer for the agent; never a 500. Afterwards: every accepted booking is
there with its outbox rows and no appointment lacks them; the first booking succeeds within
2 s of the server's return; each refused booking left a metric, a log line and (its company
known) a count in the ops view. Stale pooled connections cost nothing: right after a restart
a burst on warm pools succeeds entirely.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.integrations.retell import signature as retell
from shared.models import Appointment, OutboxEvent
from shared.security.api_keys import issue_key
from tests.booking.agent_support import CALLER, call_function, enable_retell, signed
from tests.conftest import Services
from tests.faults.mariadb_support import (
    MariaDB,
    leave_queues_as_found,
    mariadb,
    outage_settings,
    running_again,
)
from tests.faults.report import record_fault
from tests.support.factories import Salon, create_salon
from tests.webhooks import CALCOM_SECRET, calcom_headers, set_calcom_secret
from tests.webhooks.test_ingest_calcom import body_with

# Fixtures of mariadb_support (the session server is shared with the reconciliation test).
__all__ = ["leave_queues_as_found", "mariadb"]

BERLIN = ZoneInfo("Europe/Berlin")
CLIENTS = 4
PACE_S = 0.05  # each client books every 50 ms, refused or not: a steady load
RECOVERY_BUDGET_S = 2.0
REFUSED_LOG = "booking refused: database unavailable"
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("leave_queues_as_found")]


def slots(salon: Salon) -> Iterator[tuple[str, datetime]]:
    """Distinct bookable (staff, start): Mon-Sat on the hour, 3 to 58 days ahead."""
    for offset in range(3, 59):
        day = date.today() + timedelta(days=offset)
        if day.weekday() == 6:
            continue
        for hour in (9, 10, 11, 13, 14, 15, 16, 17):
            for staff_id in salon.staff_ids:
                yield staff_id, datetime(day.year, day.month, day.day, hour, tzinfo=BERLIN)


def new_phone() -> str:
    return f"+49151{uuid.uuid4().int % 10**8:08d}"


@dataclass
class Outcome:
    sent: float
    done: float
    status: int
    body: dict[str, Any]
    retry_after: str | None
    content_type: str


@dataclass
class Load:
    """CLIENTS tasks booking distinct slots every PACE_S until stopped."""

    client: httpx.AsyncClient
    salon: Salon
    outcomes: list[Outcome] = field(default_factory=list)
    stopping: bool = False

    async def run(self) -> None:
        free = slots(self.salon)
        await asyncio.gather(*(self._client(free) for _ in range(CLIENTS)))

    async def _client(self, free: Iterator[tuple[str, datetime]]) -> None:
        while not self.stopping:
            staff_id, start = next(free)
            sent = time.monotonic()
            try:
                response = await self.client.post(
                    "/v1/appointments",
                    json={
                        "service_id": self.salon.service_id,
                        "staff_id": staff_id,
                        "start": start.isoformat(),
                        "customer": {
                            "name": "Erika Last",
                            "phone": f"+49151{uuid.uuid4().int % 10**8:08d}",
                        },
                    },
                    headers=self.salon.headers,
                )
            except Exception as exc:  # the app raised: the client got a 500; counted as one
                self.outcomes.append(
                    Outcome(sent, time.monotonic(), 500, {"error": repr(exc)}, None, "")
                )
                continue
            self.outcomes.append(
                Outcome(
                    sent,
                    time.monotonic(),
                    response.status_code,
                    response.json(),
                    response.headers.get("retry-after"),
                    response.headers.get("content-type", ""),
                )
            )
            await asyncio.sleep(max(0.0, PACE_S - (time.monotonic() - sent)))


class Lines(logging.Handler):
    """The records of one logger (configure_logging replaces the root's handlers, not these)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def refused_lines() -> Iterator[Lines]:
    lines = Lines()
    logger = logging.getLogger("services.booking.ops.overview")
    logger.addHandler(lines)
    try:
        yield lines
    finally:
        logger.removeHandler(lines)


@pytest.fixture(scope="module")
def outage(mariadb: MariaDB, redis_url: str) -> Settings:
    return outage_settings(mariadb, redis_url)


@pytest.fixture(scope="module")
async def db2(outage: Settings) -> AsyncIterator[Database]:
    database = Database(settings=outage)
    yield database
    await database.dispose()


@pytest.fixture(scope="module")
async def apps(outage: Settings, db2: Database) -> AsyncIterator[Services]:
    async with db2.transaction(SYSTEM) as session:
        issued = issue_key(session, company_id=None, name="services", scopes=["service"])
    async with Services(outage.model_copy(update={"service_api_key": issued.plaintext})) as svc:
        yield svc


def refused_metric(source: str) -> float:
    labels = {"source": source, "reason": "database_unavailable"}
    return REGISTRY.get_sample_value("booking_refused_total", labels) or 0.0


def clean_refusal(outcome: Outcome) -> bool:
    """503 problem+json `database_unavailable` with Retry-After: what the outage may answer."""
    return (
        outcome.status == 503
        and outcome.content_type == "application/problem+json"
        and outcome.body.get("code") == "database_unavailable"
        and outcome.retry_after == "2"
    )


def assert_clean_refusal(response: httpx.Response, what: str) -> None:
    assert response.status_code == 503, (what, response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json", what
    assert response.headers.get("retry-after") == "2", what
    assert response.json()["code"] == "database_unavailable", what


@dataclass
class Warm:
    """A salon on the second server whose key, Cal.com secret and policy cache are warm."""

    salon: Salon
    appointment_id: str


async def warm_salon(apps: Services, db2: Database) -> Warm:
    salon = await create_salon(db2)
    await enable_retell(db2, salon)
    await set_calcom_secret(db2, salon.tenant.company_id, CALCOM_SECRET)
    booking, policy, webhooks = (apps.clients[n] for n in ("booking", "policy", "webhooks"))
    # Before the days `slots` hands out (1 or 2 days ahead, not a Sunday).
    day = next(d for d in (date.today() + timedelta(days=n) for n in (1, 2)) if d.weekday() < 6)
    made = await booking.post(
        "/v1/appointments",
        json={
            "service_id": salon.service_id,
            "staff_id": salon.staff_ids[0],
            "start": datetime(day.year, day.month, day.day, 10, tzinfo=BERLIN).isoformat(),
            "customer": {"name": "Warm Up", "phone": "+4915100000001"},
        },
        headers=salon.headers,
    )
    assert made.status_code == 201, made.text
    appointment_id = made.json()["id"]
    for _ in range(2):  # the first fills the key and config caches, the second is lean
        evaluated = await policy.post(
            "/v1/policies/evaluate",
            json={"appointment_id": appointment_id, "action": "cancel"},
            headers=salon.headers,
        )
        assert evaluated.status_code == 200, evaluated.text
    raw = json.dumps(body_with(f"warm-{uuid.uuid4().hex[:10]}")).encode()
    path = f"/v1/webhooks/calcom/{salon.tenant.company_id}"
    delivered = await webhooks.post(path, content=raw, headers=calcom_headers(raw))
    assert delivered.status_code == 202, delivered.text
    return Warm(salon, appointment_id)


async def probe_every_service(apps: Services, warm: Warm) -> None:
    """One request of each kind while the database is down: clean refusals only."""
    salon, company = warm.salon, warm.salon.tenant.company_id
    booking, policy = apps.clients["booking"], apps.clients["policy"]
    webhooks, notifications = apps.clients["webhooks"], apps.clients["notifications"]
    headers = salon.headers
    assert_clean_refusal(
        await booking.get(
            "/v1/availability",
            params={"service_id": salon.service_id, "date": date.today().isoformat()},
            headers=headers,
        ),
        "booking availability",
    )
    assert_clean_refusal(
        await booking.get(f"/v1/appointments/{warm.appointment_id}", headers=headers),
        "booking appointment",
    )
    assert_clean_refusal(  # lean route, raw pool reads
        await policy.post(
            "/v1/policies/evaluate",
            json={"appointment_id": warm.appointment_id, "action": "cancel"},
            headers=headers,
        ),
        "policy evaluate (lean)",
    )
    assert_clean_refusal(
        await policy.get(f"/v1/policies/company/{company}/cancellation", headers=headers),
        "policy config",
    )
    raw = json.dumps(body_with(f"outage-{uuid.uuid4().hex[:10]}")).encode()
    assert_clean_refusal(  # lean route, raw pool INSERT: Cal.com will not send it again
        await webhooks.post(
            f"/v1/webhooks/calcom/{company}", content=raw, headers=calcom_headers(raw)
        ),
        "Cal.com delivery (lean)",
    )
    assert_clean_refusal(
        await webhooks.get("/v1/webhooks/events", headers=headers), "webhook events"
    )
    assert_clean_refusal(
        await notifications.get("/v1/notifications/deliveries", headers=headers),
        "notification deliveries",
    )
    # The agent cannot speak a 503: a sentence offering a callback instead.
    spoken = await call_function(
        booking,
        salon,
        "book_appointment",
        {
            "service": "Herrenhaarschnitt",
            "date": "2030-01-07",
            "time": "10:00",
            "customer_name": "Erika Last",
        },
    )
    assert spoken.status_code == 200, spoken.text
    assert spoken.json()["status"] == "needs_callback"
    assert "Rückruf" in spoken.json()["message"]
    callback = await call_function(booking, salon, "request_callback", {"reason": "Termin"})
    assert callback.status_code == 200, callback.text
    assert callback.json()["status"] == "unavailable"
    assert "noch einmal an" in callback.json()["message"]
    # Retell's inbound webhook: the greeting of an unknown caller, so the call goes on.
    raw_event, signed_headers = signed(
        {
            "event": "call_inbound",
            "event_timestamp": retell.now_ms(),
            "call_inbound": {
                "agent_id": "a",
                "from_number": CALLER,
                "to_number": salon.phone_number,
            },
        }
    )
    inbound = await booking.post("/v1/retell/inbound", content=raw_event, headers=signed_headers)
    assert inbound.status_code == 200, inbound.text
    variables = inbound.json()["call_inbound"]["dynamic_variables"]
    assert variables["customer_known"] == "false" and variables["customer_name"] == ""


async def double_booked(db2: Database, company_id: str) -> int:
    """Appointments beyond the first on one (staff, start): each request books its own slot,
    so any is a request written twice."""
    async with db2.transaction(SYSTEM, write=False) as session:
        counts = await session.scalars(
            sa.select(sa.func.count())
            .where(Appointment.company_id == company_id)
            .group_by(Appointment.staff_id, Appointment.starts_at)
        )
        return sum(count - 1 for count in counts)


async def company_rows(db2: Database, company_id: str) -> tuple[set[str], dict[str, list[str]]]:
    """The company's appointment ids, and each outbox aggregate's job names."""
    async with db2.transaction(SYSTEM, write=False) as session:
        appointments = set(
            (
                await session.scalars(
                    sa.select(Appointment.id).where(Appointment.company_id == company_id)
                )
            ).all()
        )
        outbox: dict[str, list[str]] = {}
        rows = await session.execute(
            sa.select(OutboxEvent.aggregate_id, OutboxEvent.job_name).where(
                OutboxEvent.company_id == company_id
            )
        )
        for aggregate_id, job_name in rows:
            outbox.setdefault(aggregate_id, []).append(job_name)
    return appointments, {k: sorted(v) for k, v in outbox.items()}


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
async def test_steady_bookings_through_a_restart(
    how: str, mariadb: MariaDB, apps: Services, db2: Database, refused_lines: Lines
) -> None:
    warm = await warm_salon(apps, db2)
    company = warm.salon.tenant.company_id
    metric_before = {source: refused_metric(source) for source in ("api", "agent")}
    load = Load(apps.clients["booking"], warm.salon)
    with running_again(mariadb):
        running = asyncio.create_task(load.run())
        try:
            await asyncio.sleep(0.8)
            went_down = time.monotonic()
            await asyncio.to_thread(mariadb.stop if how == "sigterm" else mariadb.kill)
            await probe_every_service(apps, warm)
            await asyncio.sleep(max(0.0, 1.5 - (time.monotonic() - went_down)))
            returned = await asyncio.to_thread(mariadb.start)
            await asyncio.sleep(RECOVERY_BUDGET_S + 0.5)
        finally:
            load.stopping = True
            await asyncio.wait([running])
    running.result()

    statuses = {o.status for o in load.outcomes}
    refused = [o for o in load.outcomes if o.status == 503]
    accepted = [o for o in load.outcomes if o.status == 201]
    # The figures of the closing note, recorded before any assertion (a defect shows there).
    appointments, outbox = await company_rows(db2, company)
    expected = outbox.get(warm.appointment_id)
    lost = [o.body["id"] for o in accepted if outbox.get(o.body["id"]) != expected]
    after_return = [o.done for o in accepted if o.sent >= returned]
    recovery_s = min(after_return) - returned if after_return else None
    ambiguous = len(appointments) - 1 - len(accepted)  # refused, yet its COMMIT went through
    record_fault(
        f"MariaDB {'SIGTERM (clean shutdown)' if how == 'sigterm' else 'SIGKILL (crash)'}, "
        "restarted after 1.5 s",
        sent=len(load.outcomes),
        accepted=len(accepted),
        refused=len([o for o in load.outcomes if clean_refusal(o)]),
        errors_500=len([o for o in load.outcomes if o.status >= 500 and not clean_refusal(o)]),
        lost=len(lost),
        duplicated=await double_booked(db2, company),
        recover_s=recovery_s,
        note=f"bookings, {CLIENTS} clients every {PACE_S * 1000:.0f} ms; refusals: 503 "
        "database_unavailable + Retry-After; time: server back -> first 201; "
        f"{ambiguous} refused booking(s) committed anyway (ambiguous, kept)",
    )
    assert statuses <= {201, 503}, statuses  # never a 500, nothing else either
    assert lost == [], lost
    assert refused, "the outage refused no booking"
    for outcome in refused:
        assert clean_refusal(outcome), outcome
    assert recovery_s is not None, "no booking succeeded after the server's return"
    print(  # the figures of the closing note
        f"\n[{how}] sent {len(load.outcomes)}, accepted {len(accepted)}, refused (503) "
        f"{len(refused)}, first success {recovery_s * 1000:.0f} ms after the server's return"
    )
    assert recovery_s < RECOVERY_BUDGET_S, recovery_s
    # Every booking sent after the server's return succeeded: no stale connection refused one.
    assert [o.status for o in load.outcomes if o.sent >= returned] == [201] * len(
        [o for o in load.outcomes if o.sent >= returned]
    )

    # Nothing acknowledged was lost, nothing half written: each appointment with its outbox
    # rows (as the warm-up booking has them), no outbox row without its appointment.
    assert {o.body["id"] for o in accepted} <= appointments
    assert expected, "a booking stages its outbox rows"
    assert {a: outbox.get(a) for a in appointments} == {a: expected for a in appointments}
    assert set(outbox) <= appointments
    # At most the few bookings whose COMMIT was cut off may exist though refused (ambiguous).
    assert ambiguous <= CLIENTS
    assert await double_booked(db2, company) == 0

    # Each refused booking left its evidence: metric, log line, the ops view's count (the API
    # key was verified before: company known; the agent's call could not be attributed).
    assert refused_metric("api") - metric_before["api"] == len(refused)
    assert refused_metric("agent") - metric_before["agent"] == 1
    lines = [r for r in refused_lines.records if r.getMessage() == REFUSED_LOG]
    assert len(lines) == len(refused) + 1
    assert {getattr(r, "company_id", None) for r in lines} == {company, None}
    assert all(getattr(r, "reason", None) == "database_unavailable" for r in lines)
    view = await apps.clients["booking"].get("/v1/ops/overview", headers=warm.salon.headers)
    assert view.status_code == 200, view.text
    assert view.json()["refused_unrecorded_today"] == len(refused)
    page = await apps.clients["booking"].get("/ops", headers=warm.salon.headers)
    assert page.status_code == 200
    assert f'<div class="big bad">{len(refused)}</div>' in page.text.split('id="refused"')[1]


async def test_warm_pools_after_a_restart_serve_the_first_requests(
    mariadb: MariaDB, apps: Services, db2: Database
) -> None:
    """Connections the restart broke are replaced at checkout: the first requests after the
    server's return, on pools full of them, all succeed (session pool and raw pool)."""
    warm = await warm_salon(apps, db2)
    booking, policy = apps.clients["booking"], apps.clients["policy"]
    webhooks = apps.clients["webhooks"]
    company = warm.salon.tenant.company_id
    free = slots(warm.salon)

    def book() -> Any:
        staff_id, start = next(free)
        return booking.post(
            "/v1/appointments",
            json={
                "service_id": warm.salon.service_id,
                "staff_id": staff_id,
                "start": start.isoformat(),
                "customer": {"name": "Max First", "phone": new_phone()},
            },
            headers=warm.salon.headers,
        )

    def evaluate() -> Any:
        return policy.post(
            "/v1/policies/evaluate",
            json={"appointment_id": warm.appointment_id, "action": "cancel"},
            headers=warm.salon.headers,
        )

    def deliver() -> Any:
        raw = json.dumps(body_with(f"burst-{uuid.uuid4().hex[:10]}")).encode()
        return webhooks.post(
            f"/v1/webhooks/calcom/{company}", content=raw, headers=calcom_headers(raw)
        )

    async def burst() -> list[int]:
        answers = await asyncio.gather(
            *(book() for _ in range(6)),
            *(evaluate() for _ in range(4)),
            *(deliver() for _ in range(4)),
        )
        return [a.status_code for a in answers]

    assert await burst() == [201] * 6 + [200] * 4 + [202] * 4  # the pools hold connections
    with running_again(mariadb):
        await asyncio.to_thread(mariadb.kill)
        await asyncio.to_thread(mariadb.start)
    started = time.monotonic()
    answers = await asyncio.gather(
        *(book() for _ in range(6)), *(evaluate() for _ in range(4)), *(deliver() for _ in range(4))
    )
    answered_s = time.monotonic() - started
    statuses = [a.status_code for a in answers]
    booked = [a.json()["id"] for a in answers[:6] if a.status_code == 201]
    appointments, _ = await company_rows(db2, company)
    record_fault(
        "MariaDB SIGKILL, first requests on pools of broken connections",
        sent=len(answers),
        accepted=len([s for s in statuses if s < 300]),
        refused=statuses.count(503),
        errors_500=len([s for s in statuses if s >= 500 and s != 503]),
        lost=len(set(booked) - appointments),
        duplicated=await double_booked(db2, company),
        recover_s=answered_s,
        note="a burst of 6 bookings, 4 evaluations (lean), 4 Cal.com deliveries (lean) right "
        "after the restart; time: server back -> all answered",
    )
    assert statuses == [201] * 6 + [200] * 4 + [202] * 4
    async with db2.transaction(SYSTEM, write=False) as session:  # as a worker's job would
        assert await session.scalar(sa.select(sa.literal(1))) == 1
    assert time.monotonic() - started < RECOVERY_BUDGET_S


async def test_a_hung_server_costs_a_bounded_wait_not_a_stall(
    mariadb: MariaDB, redis_url: str, db2: Database
) -> None:
    """A server that accepts connections and never answers (SIGSTOP; a network that drops a
    connection silently looks the same to a pooled one): an idle pooled connection fails its
    ping within DB_CONNECT_TIMEOUT_S, a new connection gets no handshake within it, a raw
    statement has RAW_TIMEOUT_S; so a request is refused in about a second, never stalls."""
    settings = outage_settings(mariadb, redis_url, db_connect_timeout_s=0.3, raw_timeout_s=1.0)
    async with Services(settings) as svc:
        warm = await warm_salon(svc, db2)
        booking, policy = svc.clients["booking"], svc.clients["policy"]
        company = warm.salon.tenant.company_id
        staff_id, start = next(slots(warm.salon))

        def requests() -> list[Any]:
            raw = json.dumps(body_with(f"hung-{uuid.uuid4().hex[:10]}")).encode()
            return [
                booking.post(
                    "/v1/appointments",
                    json={
                        "service_id": warm.salon.service_id,
                        "staff_id": staff_id,
                        "start": start.isoformat(),
                        "customer": {"name": "Hans Hang", "phone": new_phone()},
                    },
                    headers=warm.salon.headers,
                ),
                policy.post(  # lean, raw pool
                    "/v1/policies/evaluate",
                    json={"appointment_id": warm.appointment_id, "action": "cancel"},
                    headers=warm.salon.headers,
                ),
                svc.clients["webhooks"].post(  # lean, raw pool INSERT
                    f"/v1/webhooks/calcom/{company}", content=raw, headers=calcom_headers(raw)
                ),
            ]

        await asyncio.sleep(0.6)  # every pooled connection is now idle past the ping window
        assert mariadb.proc is not None
        mariadb.proc.send_signal(signal.SIGSTOP)

        async def timed(request: Any) -> tuple[httpx.Response, float]:
            started = time.monotonic()
            return await request, time.monotonic() - started

        try:
            answers = await asyncio.gather(*(timed(r) for r in requests()))
        finally:
            mariadb.proc.send_signal(signal.SIGCONT)
            continued = time.monotonic()
        again = await asyncio.gather(*requests())
        again_s = time.monotonic() - continued
        names = ("booking", "evaluate (lean)", "delivery (lean)")
        waits = ", ".join(
            f"{n} {w * 1000:.0f} ms" for n, (_, w) in zip(names, answers, strict=True)
        )
        statuses = [a.status_code for a, _ in answers] + [a.status_code for a in again]
        booked = [a.json()["id"] for a in again[:1] if a.status_code == 201]
        appointments, _ = await company_rows(db2, company)
        record_fault(
            "MariaDB hung (SIGSTOP), then continued (SIGCONT)",
            sent=len(statuses),
            accepted=len([s for s in statuses if s < 300]),
            refused=len([a for a, _ in answers if a.status_code == 503])
            + len([a for a in again if a.status_code == 503]),
            errors_500=len([s for s in statuses if s >= 500 and s != 503]),
            lost=len(set(booked) - appointments),
            duplicated=await double_booked(db2, company),
            recover_s=again_s,
            note=f"booking, evaluation, delivery during the hang: refused after {waits}; the "
            "same after SIGCONT; time: SIGCONT -> all answered",
        )
        for (answer, _), what in zip(answers, names, strict=True):
            assert_clean_refusal(answer, what)
        print(f"\n[hung server] refused after: {waits}")
        assert max(w for _, w in answers) < 3.0, waits
        # Answering again: fresh connections serve at once.
        assert [a.status_code for a in again] == [201, 200, 202]
