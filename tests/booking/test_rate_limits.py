"""Rate limits shared by all replicas (Redis): per API key and per calling number."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from shared.db.engine import Database
from shared.web.rate_limit import RateLimits
from tests.booking.agent_support import call_function, enable_retell
from tests.conftest import Services
from tests.support.factories import create_salon, next_weekday


@contextmanager
def limits(services: Services, per_key: int, per_number: int) -> Iterator[None]:
    app = services.apps["booking"]
    saved = app.state.rate_limits
    app.state.rate_limits = RateLimits(per_key_per_minute=per_key, per_number_per_minute=per_number)
    try:
        yield
    finally:
        app.state.rate_limits = saved


async def test_per_key_limit_answers_429_with_retry_after(services: Services, db: Database) -> None:
    salon = await create_salon(db)
    client = services.clients["booking"]
    with limits(services, per_key=5, per_number=1000):
        codes = [
            (await client.get("/v1/appointments", headers=salon.headers)).status_code
            for _ in range(6)
        ]
        refused = await client.get("/v1/appointments", headers=salon.headers)
    assert codes == [200] * 5 + [429]
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60


async def test_per_number_limit_asks_the_caller_to_hold_on(
    services: Services, db: Database
) -> None:
    salon = await create_salon(db)
    await enable_retell(db, salon)
    client = services.clients["booking"]
    args = {"service": "Herrenhaarschnitt", "date": next_weekday(1).isoformat()}
    with limits(services, per_key=1000, per_number=3):
        answers = [await call_function(client, salon, "check_availability", args) for _ in range(4)]
        other_caller = await call_function(
            client, salon, "check_availability", args, caller="+491609999999"
        )
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert int(refused.headers["retry-after"]) >= 1
    assert "Moment" in refused.json()["message"]
    assert other_caller.status_code == 200
