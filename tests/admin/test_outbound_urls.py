"""PUT /v1/admin/integrations/calcom refuses base URLs outbound calls may not use (422
`outbound_url_refused`, nothing stored), with the production rules: https, a host on
OUTBOUND_ALLOWED_HOSTS, no credentials, no private IP literal, no DNS lookup."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from shared.db.engine import Database
from tests.admin.support import ADMIN, assert_problem
from tests.admin.test_calcom import stored
from tests.conftest import Services
from tests.support.factories import Tenant

URL = f"{ADMIN}/integrations/calcom"
KEY = "cal_live_0123456789abcd"


@pytest.fixture
def production_rules(services: Services) -> Iterator[None]:
    """The booking app with the defaults of a real deployment (private addresses refused)."""
    app = services.apps["booking"]
    before = app.state.settings
    app.state.settings = before.model_copy(
        update={
            "allow_private_outbound_urls": False,
            "outbound_allowed_hosts": "api.cal.com,*.cal.example.com",
        }
    )
    yield
    app.state.settings = before


REFUSED = {
    "https://127.0.0.1": "address not allowed (loopback)",
    "https://10.0.0.1": "address not allowed (private network)",
    "https://169.254.169.254": "address not allowed (link-local or metadata)",
    "https://[::1]": "address not allowed (loopback)",
    "http://api.cal.com": "only https URLs are allowed",
    "https://internal.corp.example": "is not on the allowed list",
    "https://admin:pw@api.cal.com": "credentials in the URL are not allowed",
}


@pytest.mark.usefixtures("production_rules")
@pytest.mark.parametrize("base_url", list(REFUSED))
async def test_refused_base_url_is_422_and_stores_nothing(
    booking: httpx.AsyncClient, db: Database, tenant: Tenant, base_url: str
) -> None:
    first = await booking.put(
        URL, headers=tenant.headers, json={"api_key": KEY, "base_url": "https://api.cal.com"}
    )
    assert first.status_code == 200, first.text
    before = await stored(db, tenant.company_id)

    response = await booking.put(
        URL,
        headers=tenant.headers,
        json={"api_key": "cal_live_other_key_0000", "base_url": base_url},
    )

    assert_problem(response, 422, "outbound_url_refused", "base_url")
    assert REFUSED[base_url] in response.json()["detail"]
    assert await stored(db, tenant.company_id) == before
    assert (await booking.get(URL, headers=tenant.headers)).json()["base_url"] == (
        "https://api.cal.com"
    )


@pytest.mark.usefixtures("production_rules")
async def test_allowed_host_is_stored_without_any_dns_lookup(
    booking: httpx.AsyncClient, db: Database, tenant: Tenant
) -> None:
    # This host resolves nowhere (the machine has no internet): saving must not ask DNS.
    base_url = "https://tenant-7f3a.cal.example.com/"
    response = await booking.put(
        URL, headers=tenant.headers, json={"api_key": KEY, "base_url": base_url}
    )
    assert response.status_code == 200, response.text
    assert response.json()["base_url"] == "https://tenant-7f3a.cal.example.com"
    assert (await stored(db, tenant.company_id))[1] == "https://tenant-7f3a.cal.example.com"
