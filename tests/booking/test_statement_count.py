"""A successful booking costs at most 8 SQL statements (counted at the driver), keyed or not,
for a new or a returning customer; the API key lookup is cached after the first request."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from shared.db.engine import Database
from tests.booking.test_booking_api import at, body
from tests.conftest import Services
from tests.support.factories import create_salon, next_weekday

LIMIT = 8


@contextmanager
def counted(services: Services) -> Iterator[list[str]]:
    engine = services.apps["booking"].state.db.engine.sync_engine
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.split()[0].upper())

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


@pytest.mark.parametrize("keyed", [False, True])
async def test_booking_statement_budget(services: Services, db: Database, keyed: bool) -> None:
    salon = await create_salon(db)
    client = services.clients["booking"]
    day = next_weekday(2)
    await client.get("/v1/appointments", headers=salon.headers)  # warms the key cache
    for hour, phone in ((9, "+491701111111"), (10, "+491701111111")):  # new, then returning
        headers = dict(salon.headers)
        if keyed:
            headers["Idempotency-Key"] = f"budget-{hour}"
        with counted(services) as statements:
            response = await client.post(
                "/v1/appointments", json=body(salon, at(day, hour), phone=phone), headers=headers
            )
        assert response.status_code == 201, response.text
        work = [s for s in statements if s not in ("BEGIN", "COMMIT", "ROLLBACK")]
        assert len(work) <= LIMIT, statements
