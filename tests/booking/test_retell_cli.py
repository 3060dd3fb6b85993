"""`appointments retell-call` signs and sends a call to a running booking service (uvicorn on
a free loopback port, serving the test app) and prints the answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn
from sqlalchemy import func, select

from shared.db.engine import Database
from shared.models import Appointment
from tests.booking.agent_support import CALLER, RETELL_KEY, enable_retell
from tests.booking.test_booking_api import at
from tests.conftest import Services
from tests.support.factories import Salon, create_salon, next_weekday
from tools.cli import build_parser


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(services: Services) -> AsyncIterator[str]:
    """The booking app behind a real HTTP server in this event loop (its lifespan already
    ran for the test's app)."""
    port = _free_port()
    config = uvicorn.Config(
        services.apps["booking"], host="127.0.0.1", port=port, lifespan="off", log_level="error"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _retell_call(services: Services, *argv: str) -> int:
    args = build_parser().parse_args(["retell-call", *argv])
    settings = services.apps["booking"].state.settings.model_copy(
        update={"retell_api_key": RETELL_KEY}
    )
    return int(await asyncio.to_thread(args.handler, args, settings))


async def _salon(db: Database) -> Salon:
    salon = await create_salon(db)
    await enable_retell(db, salon)
    return salon


async def test_retell_call_books_through_a_running_service(
    services: Services, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    salon = await _salon(db)
    day = next_weekday(2)
    args = {
        "service": "Herrenhaarschnitt",
        "date": day.isoformat(),
        "time": "10:00",
        "customer_name": "Max",
    }
    async with serving(services) as url:
        code = await _retell_call(
            services,
            "book_appointment",
            "--args",
            json.dumps(args),
            "--from",
            CALLER,
            "--to",
            salon.phone_number,
            "--url",
            url,
        )
        out, err = capsys.readouterr()
        typo = await _retell_call(
            services, "book_apointment", "--from", CALLER, "--to", salon.phone_number, "--url", url
        )
        typo_out, typo_err = capsys.readouterr()

    assert code == 0, err
    answer = json.loads(out)
    assert (answer["status"], answer["start"]) == ("booked", at(day, 10))
    assert err.startswith(f"HTTP 200 from {url}/v1/retell/functions/book_appointment")
    async with db.transaction(salon.tenant.company_id, write=False) as session:
        stored = await session.scalar(select(func.count()).select_from(Appointment))
    assert stored == 1
    assert typo == 1
    assert json.loads(typo_out)["code"] == "unknown_function"
    assert typo_err.startswith("HTTP 404")


async def test_retell_call_without_a_key_or_a_server_says_so(
    services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(["retell-call", "list_appointments", "--from", CALLER])
    settings = services.apps["booking"].state.settings.model_copy(update={"retell_api_key": None})
    assert args.handler(args, settings) == 2
    assert "RETELL_API_KEY" in capsys.readouterr().err
    closed = f"http://127.0.0.1:{_free_port()}"
    code = await _retell_call(services, "list_appointments", "--from", CALLER, "--url", closed)
    assert code == 1
    assert f"cannot reach {closed}" in capsys.readouterr().err


def test_retell_call_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    for argv in (
        ["retell-call", "x", "--from", "not a number"],
        ["retell-call", "x", "--from", CALLER, "--args", "[1, 2]"],
        ["retell-call", "x", "--from", CALLER, "--args", "{oops"],
    ):
        with pytest.raises(SystemExit) as stopped:
            parser.parse_args(argv)
        assert stopped.value.code == 2
    assert "--args must be a JSON object" in capsys.readouterr().err
