"""Property-based: any sequence of book / cancel / reschedule / retry-with-key keeps the
invariant that no two live appointments of one staff member overlap (buffers included), and
that an idempotency key never yields more than one appointment."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from sqlalchemy import select

from shared.config import Settings
from shared.db.engine import Database
from shared.models import LIVE_STATUSES, Appointment
from tests.conftest import Services
from tests.support.factories import Salon, create_salon, next_weekday

BERLIN = ZoneInfo("Europe/Berlin")
FIRST_DAY = next_weekday(0, at_least_days=3)


def local_start(day: int, quarter: int) -> str:
    d = FIRST_DAY + timedelta(days=day)
    start = datetime(d.year, d.month, d.day, 9, tzinfo=BERLIN) + timedelta(minutes=15 * quarter)
    return start.isoformat()


class BookingMachine(RuleBasedStateMachine):
    """Drives the real booking and policy apps; one fresh company per example."""

    settings_: Settings

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.services = Services(self.settings_)
        self.loop.run_until_complete(self.services.__aenter__())
        self.db = Database(settings=self.settings_)
        self.salon: Salon = self.loop.run_until_complete(create_salon(self.db))
        self.client: httpx.AsyncClient = self.services.clients["booking"]
        self.ids: list[str] = []
        self.keyed: dict[str, dict[str, Any]] = {}
        self.key_answers: dict[str, set[str]] = {}

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.services.__aexit__(None, None, None))
        self.run(self.db.dispose())
        self.loop.close()

    def _body(self, staff: int | None, day: int, quarter: int, caller: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "service_id": self.salon.service_id,
            "start": local_start(day, quarter),
            "customer": {"name": f"Caller {caller}", "phone": f"+4917011{caller:05d}"},
        }
        if staff is not None:
            body["staff_id"] = self.salon.staff_ids[staff]
        return body

    def _post(self, body: dict[str, Any], key: str | None = None) -> httpx.Response:
        headers = dict(self.salon.headers)
        if key:
            headers["Idempotency-Key"] = key
        response = self.run(self.client.post("/v1/appointments", json=body, headers=headers))
        assert response.status_code in (200, 201, 409, 422), response.text
        if response.status_code in (200, 201):
            self.ids.append(response.json()["id"])
            if key:
                self.key_answers.setdefault(key, set()).add(response.json()["id"])
        return response

    @rule(
        staff=st.sampled_from([0, 1, None]),
        day=st.integers(0, 2),
        quarter=st.integers(0, 13),
        caller=st.integers(0, 5),
        key=st.sampled_from([None, None, "k1", "k2", "k3"]),
    )
    def book(self, staff: int | None, day: int, quarter: int, caller: int, key: str | None) -> None:
        body = self._body(staff, day, quarter, caller)
        if key is not None and key in self.keyed:
            body = self.keyed[key]
        response = self._post(body, key)
        if key is not None and response.status_code in (200, 201):
            self.keyed.setdefault(key, body)

    # Draws never depend on what the servers answered (hypothesis must be able to replay a
    # case): an index is drawn and mapped onto whatever exists, and a rule with nothing to act
    # on does nothing.
    @rule(index=st.integers(0, 1_000))
    def retry_with_key(self, index: int) -> None:
        if not self.keyed:
            return
        key = sorted(self.keyed)[index % len(self.keyed)]
        self._post(self.keyed[key], key)

    @rule(index=st.integers(0, 1_000))
    def cancel(self, index: int) -> None:
        if not self.ids:
            return
        appointment_id = self.ids[index % len(self.ids)]
        response = self.run(
            self.client.post(
                f"/v1/appointments/{appointment_id}/cancel", json={}, headers=self.salon.headers
            )
        )
        assert response.status_code in (200, 409), response.text

    @rule(index=st.integers(0, 1_000), day=st.integers(0, 2), quarter=st.integers(0, 13))
    def reschedule(self, index: int, day: int, quarter: int) -> None:
        if not self.ids:
            return
        appointment_id = self.ids[index % len(self.ids)]
        response = self.run(
            self.client.post(
                f"/v1/appointments/{appointment_id}/reschedule",
                json={"start": local_start(day, quarter)},
                headers=self.salon.headers,
            )
        )
        assert response.status_code in (200, 409, 422), response.text

    @invariant()
    def no_overlap_and_one_appointment_per_key(self) -> None:
        async def live() -> list[Appointment]:
            async with self.db.transaction(self.salon.tenant.company_id, write=False) as s:
                rows = await s.execute(
                    select(Appointment)
                    .where(Appointment.status.in_(LIVE_STATUSES))
                    .order_by(Appointment.staff_id, Appointment.blocked_from)
                )
                return list(rows.scalars())

        appointments = self.run(live())
        for before, after in itertools.pairwise(appointments):
            if before.staff_id == after.staff_id:
                assert before.blocked_until <= after.blocked_from, (before.id, after.id)
        for key, answers in self.key_answers.items():
            assert len(answers) == 1, (key, answers)


def test_booking_state_machine(settings: Settings) -> None:
    BookingMachine.settings_ = settings
    machine = BookingMachine.TestCase
    machine.settings = hsettings(
        max_examples=12,
        stateful_step_count=15,
        deadline=None,
        database=None,  # each run explores afresh; failures print their reproduction
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    machine().runTest()
