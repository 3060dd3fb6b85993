"""Idle connections: our servers keep them longer than any client's idle expiry, and our
clients drop them before a server with uvicorn's default keep-alive closes them; our clients'
pools never close an idle connection they may have handed to a waiting request (httpcore
1.0.9 does for "surplus" idle connections: encode/httpcore#1110). Otherwise a request sent on
a connection that is just being closed reads a reset instead of an answer (`ReadError`, twice
in CI in the 50-caller race test)."""

from __future__ import annotations

import sys

import httpx
import uvicorn

from services.booking.worker import calcom_http
from shared.config import Settings
from shared.observability.tracing import OUTBOUND_LIMITS, outbound_limits, traced_transport
from tests.support.servers import group_client
from tools.children import KEEP_ALIVE_S, SERVICES, child_commands

HTTPX_DEFAULT_EXPIRY_S = httpx.Limits().keepalive_expiry
UVICORN_DEFAULT_KEEP_ALIVE_S = uvicorn.Config(app=None).timeout_keep_alive


def test_the_defaults_are_what_this_guards_against() -> None:
    assert HTTPX_DEFAULT_EXPIRY_S == 5.0
    assert UVICORN_DEFAULT_KEEP_ALIVE_S == 5


def test_make_run_serves_every_api_with_a_keep_alive_above_client_and_ingress_expiry() -> None:
    assert KEEP_ALIVE_S == 75  # > httpx's 5 s and nginx's upstream keep-alive of 60 s
    commands = child_commands(Settings(_env_file=None))
    for name, _factory in SERVICES:
        argv = commands[name]
        assert argv[argv.index("--timeout-keep-alive") + 1] == "75", name


def test_outbound_clients_drop_idle_connections_before_a_default_uvicorn_closes_them() -> None:
    assert OUTBOUND_LIMITS.keepalive_expiry == 4.0
    transport = traced_transport()
    pool = transport._inner._pool  # type: ignore[attr-defined]
    assert pool._keepalive_expiry == 4.0


def _pool(client_or_transport: object) -> object:
    transport = getattr(client_or_transport, "_transport", client_or_transport)
    return transport._inner._pool  # type: ignore[attr-defined]


async def test_outbound_pools_keep_as_many_idle_connections_as_they_open() -> None:
    """httpcore closes idle connections while the pool holds more connections (busy ones
    counted) than it may keep idle: with the two limits equal that never happens."""
    assert outbound_limits(7).max_keepalive_connections == 7
    assert OUTBOUND_LIMITS.max_connections == OUTBOUND_LIMITS.max_keepalive_connections == 100
    calcom = calcom_http()
    try:
        for pool in (_pool(traced_transport()), _pool(calcom)):
            assert pool._max_keepalive_connections == pool._max_connections  # type: ignore[attr-defined]
            assert pool._keepalive_expiry == 4.0  # type: ignore[attr-defined]
    finally:
        await calcom.aclose()


async def test_the_test_client_for_server_groups_never_closes_idle_connections() -> None:
    async with group_client() as client:
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert pool._max_connections == pool._max_keepalive_connections == sys.maxsize
