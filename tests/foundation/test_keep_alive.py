"""Idle connections: our servers keep them longer than any client's idle expiry, and our
clients drop them before a server with uvicorn's default keep-alive closes them. Otherwise a
request sent on a connection the other side is just closing reads a reset instead of an
answer (a `ReadError` in the 50-caller race test, once in CI)."""

from __future__ import annotations

import httpx
import uvicorn

from shared.config import Settings
from shared.runner import KEEP_ALIVE_S, SERVICES, child_commands
from shared.tracing import OUTBOUND_LIMITS, traced_transport

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
