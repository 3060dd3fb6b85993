"""The connect-time outbound guard (shared/security/outbound.py) and what the Cal.com client
reports.

The guard resolves the host itself, refuses if any address is not public and connects to the
address it checked (never by name again); the Cal.com client turns a refusal into the
permanent `CalcomAddressRefused`, and never puts what the remote side wrote into its errors.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.integrations.calcom import (
    CalcomAddressRefused,
    CalcomClient,
    CalcomRejected,
    CalcomTransient,
)
from shared.integrations.calcom.call_log import CallLog
from shared.models import Company
from shared.models.integration import ApiCallLog
from shared.security.outbound import OutboundAddressRefused, Resolver, outbound_client
from tests.support.canned_http import CannedHttp
from tests.support.factories import create_tenant

TIMEOUT = httpx.Timeout(5.0)
STRICT = Settings(_env_file=None, outbound_allowed_hosts="cal.test,localhost")
LOOSE = Settings(_env_file=None, allow_private_outbound_urls=True)
SECRET = "sk_live_9f8e7d6c5b4a SECRET-TOKEN internal-db.corp:5432"
START = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)


def fixed(*addresses: str) -> tuple[list[str], Resolver]:
    """A resolver answering `addresses` for every host; the list records its calls."""
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(f"{host}:{port}")
        return list(addresses)

    return calls, resolve


@pytest.mark.parametrize(
    ("addresses", "reason"),
    [
        (["10.0.0.5"], "address not allowed (private network)"),
        (["169.254.169.254"], "address not allowed (link-local or metadata)"),
        # Every address counts: one public address does not vouch for a private one.
        (["93.184.216.34", "127.0.0.1"], "address not allowed (loopback)"),
        (["2606:4700::1", "::ffff:192.168.0.1"], "address not allowed (private network)"),
        (["fd12:3456::1"], "address not allowed (private network)"),
    ],
)
async def test_a_name_resolving_to_a_private_address_is_refused(
    addresses: list[str], reason: str
) -> None:
    calls, resolver = fixed(*addresses)
    async with outbound_client(STRICT, timeout=TIMEOUT, resolver=resolver) as http:
        with pytest.raises(OutboundAddressRefused) as refused:
            await http.get("https://cal.test/v2/bookings")
    assert refused.value.reason == reason
    assert calls == ["cal.test:443"]


async def test_localhost_is_refused_through_the_system_resolver() -> None:
    async with (
        CannedHttp(200, {"status": "success", "data": []}) as server,
        outbound_client(STRICT, timeout=TIMEOUT) as http,
    ):
        with pytest.raises(OutboundAddressRefused, match="loopback"):
            await http.get(f"http://localhost:{server.port}/v2/bookings")
        assert server.heads == []  # nothing reached the listener


async def test_the_connection_goes_to_the_checked_address_with_the_hosts_name() -> None:
    calls, resolver = fixed("127.0.0.1")
    async with (
        CannedHttp(200, {"status": "success", "data": []}) as server,
        outbound_client(LOOSE, timeout=TIMEOUT, resolver=resolver) as http,
    ):
        response = await http.get(f"http://cal.test:{server.port}/v2/bookings")
    assert response.status_code == 200
    assert calls == [f"cal.test:{server.port}"]  # one lookup: the one that was checked
    [head] = server.heads
    assert head.startswith("GET /v2/bookings HTTP/1.1\r\n")
    assert f"\r\nHost: cal.test:{server.port}\r\n" in head


async def test_a_name_that_does_not_resolve_is_a_transient_failure() -> None:
    async def broken(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async with outbound_client(STRICT, timeout=TIMEOUT, resolver=broken) as http:
        client = CalcomClient(base_url="https://cal.test", api_key="k", company_id="c", http=http)
        with pytest.raises(CalcomTransient) as caught:
            await client.get_booking("uid-1")
    assert caught.value.message == "GET /v2/bookings/{uid}: name resolution failed"


async def test_a_refused_address_is_a_permanent_error_of_the_client() -> None:
    _, resolver = fixed("169.254.169.254")
    async with outbound_client(STRICT, timeout=TIMEOUT, resolver=resolver) as http:
        client = CalcomClient(base_url="https://cal.test", api_key="k", company_id="c", http=http)
        with pytest.raises(CalcomAddressRefused) as caught:
            await client.get_booking("uid-1")
    assert isinstance(caught.value, CalcomRejected)
    assert (
        caught.value.message == "Cal.com not called: address not allowed (link-local or metadata)"
    )


async def test_for_company_rechecks_the_stored_url_and_wants_a_guarded_client() -> None:
    stored_before_the_rules = Company(
        id="co-1", name="X", calcom_api_key="k", calcom_base_url="https://10.0.0.1"
    )
    async with outbound_client(STRICT, timeout=TIMEOUT) as http:
        with pytest.raises(CalcomAddressRefused, match="base URL not allowed"):
            CalcomClient.for_company(
                stored_before_the_rules, settings=STRICT, http=http, redis=None, db=None
            )
    listed = Company(id="co-2", name="Y", calcom_api_key="k", calcom_base_url="https://cal.test")
    async with httpx.AsyncClient() as unguarded:
        with pytest.raises(TypeError, match="outbound_client"):
            CalcomClient.for_company(listed, settings=STRICT, http=unguarded, redis=None, db=None)


async def test_a_4xx_body_is_never_echoed_into_errors_or_the_call_log(db: Database) -> None:
    company_id = (await create_tenant(db)).company_id
    body = {"status": "error", "error": {"message": SECRET, "details": {"dsn": SECRET}}}
    async with CannedHttp(400, body) as server, outbound_client(LOOSE, timeout=TIMEOUT) as http:
        client = CalcomClient(
            base_url=server.url,
            api_key="k",
            company_id=company_id,
            http=http,
            call_log=CallLog(db),
        )
        with pytest.raises(CalcomRejected) as caught:
            await client.create_booking(
                event_type_id=1,
                start=START,
                attendee_name="Ann",
                attendee_email="ann@example.com",
                attendee_time_zone="UTC",
                attendee_phone=None,
                metadata={"appointment_id": "a-1"},
            )
    assert caught.value.message == "Cal.com answered 400 (Bad Request)"
    assert SECRET not in str(caught.value)
    assert caught.value.remote_detail == SECRET  # kept for decisions, never for display
    async with db.transaction(SYSTEM, write=False) as session:
        logged = (
            await session.execute(
                sa.select(ApiCallLog.error_message, ApiCallLog.response_status).where(
                    ApiCallLog.company_id == company_id
                )
            )
        ).all()
    assert [tuple(row) for row in logged] == [("Cal.com answered 400 (Bad Request)", 400)]
