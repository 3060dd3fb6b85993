"""`/ops` in a real browser: headless Chromium (Debian's package) driven by Playwright against
the booking app served by uvicorn. Logs in through the form (HttpOnly, SameSite=Strict cookie)
and with the Bearer header, finds the failed booking by its correlation id, keeps a screenshot.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from services.booking.ops.overview import local_day_bounds
from shared.config import Settings
from shared.db.engine import Database
from shared.db.types import utcnow
from shared.models import Appointment, BookingFailure
from tests.ops.test_failed_bookings import at, body, book, operator
from tests.support.factories import create_salon, next_weekday
from tests.support.servers import ROOT, ServerGroup

CHROMIUM = "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SCREENSHOT = ROOT / "test-results" / "ops-page.png"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _need_browser() -> Any:
    """Playwright's async API, or a skip (a failure under CI=true) saying what is missing."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (Debian package `chromium`)")
    try:
        from playwright import async_api
    except ImportError:
        async_api = None
        missing.append("the `playwright` Python package (pip install playwright)")
    if missing:
        message = "headless browser test needs " + " and ".join(missing)
        if IN_CI:
            pytest.fail(f"{message} (CI=true: required)", pytrace=False)
        pytest.skip(message)
    return async_api


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[str]:
    env = {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url or ""}
    async with ServerGroup("services.booking.app:create", 1, env) as group:
        yield group.urls[0]


async def test_ops_page_in_headless_chromium(
    booking: httpx.AsyncClient, db: Database, server: str, failing_marker: str, backend: str
) -> None:
    async_api = _need_browser()
    salon = await create_salon(db)
    company_id = salon.tenant.company_id
    key = (await operator(db, company_id))["Authorization"].removeprefix("Bearer ")
    correlation_id = f"ops-page-{uuid.uuid4().hex[:8]}"
    day = next_weekday(1)
    refused = await booking.post(
        "/v1/appointments",
        json=body(salon, at(day, 10), notes=failing_marker),
        headers={**salon.headers, "X-Correlation-ID": correlation_id},
    )
    assert refused.status_code == 500
    synced = await book(booking, salon, at(day, 11))
    markup_at = utcnow() - timedelta(minutes=5)
    async with db.transaction(company_id) as session:
        await session.execute(
            sa.update(Appointment)
            .where(Appointment.id == synced)
            .values(sync_status="failed", sync_error="CalcomRejected: event type not found")
        )
        session.add(  # markup in an error message is shown as text, never interpreted
            BookingFailure(
                source="agent",
                error_code="policy_unavailable",
                error_message='<b class="injected">bold</b><script>document.title="x"</script>',
                http_status=503,
                correlation_id="call_markup",
                call_id="call_markup",
                created_at=markup_at,
            )
        )
    # "Today" is the company's local day: just after midnight there, a failure five minutes
    # old happened yesterday and is not in today's success rate.
    start, _ = local_day_bounds(utcnow(), "Europe/Berlin")
    failed_today = 2 if markup_at >= start else 1
    expected_headline = (
        f"0 of {failed_today + 1} bookings fully succeeded: {failed_today} failed with an "
        "error, 1 did not reach Cal.com"
    )

    async with async_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()

            anonymous = await page.goto(f"{server}/ops")
            assert anonymous is not None and anonymous.status == 401
            await page.fill("#api_key", "ak_000000000000_" + "x" * 40)
            async with page.expect_navigation() as navigation:
                await page.click("button[type=submit]")
            assert (await navigation.value).status == 401
            assert await page.locator("[role=alert]").inner_text() == (
                "The key is invalid or lacks the operator scope."
            )

            await page.fill("#api_key", key)
            async with page.expect_navigation():
                await page.click("button[type=submit]")
            assert page.url == f"{server}/ops"
            [cookie] = await context.cookies()
            assert (cookie["name"], cookie["path"]) == ("ops_session", "/ops")
            assert key not in cookie["value"] and key.split("_")[1] not in cookie["value"]
            assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (
                True,
                "Strict",
                False,  # plain http here; tests/ops/test_ops_session.py covers https
            )

            ids = await page.locator("code.correlation-id").all_inner_texts()
            assert correlation_id in ids
            assert "call_markup" in ids
            failure = page.locator("details.failure", has_text=correlation_id)
            assert "forced failure for the ops test" in await failure.inner_text()
            assert await page.locator("details.failure").count() == 3
            # 1 booked (its Cal.com sync failed), 2 failed today (or 1, just after midnight)
            assert await page.locator("#headline").inner_text() == expected_headline
            assert await page.locator("#headline").get_attribute("data-state") == "bad"
            assert await page.locator("#success-rate .big").inner_text() == (
                f"0 / {failed_today + 1}"
            )
            assert await page.locator("b.injected").count() == 0
            assert await page.title() != "x"
            assert '&lt;b class="injected"&gt;bold&lt;/b&gt;' in await page.content()
            assert await page.locator(f"#failure-{synced} tr.item-booking").count() == 1

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SCREENSHOT), full_page=True)
            print(f"\nscreenshot of /ops ({backend}): {SCREENSHOT}")

            # An API client's Bearer header works without the form.
            headed = await browser.new_context(
                extra_http_headers={"Authorization": f"Bearer {key}"}
            )
            direct = await headed.new_page()
            answer = await direct.goto(f"{server}/ops?hours=1")
            assert answer is not None and answer.status == 200
            assert answer.headers["cache-control"] == "no-store"
            assert "script-src" not in answer.headers["content-security-policy"]
            assert correlation_id in await direct.locator("code.correlation-id").all_inner_texts()
            await headed.close()

            async with page.expect_navigation():
                await page.click("header button[type=submit]")  # sign out
            assert await context.cookies() == []
            again = await page.goto(f"{server}/ops")
            assert again is not None and again.status == 401
        finally:
            await browser.close()
    assert SCREENSHOT.stat().st_size > 10_000


async def test_ops_page_refuses_keys_without_the_operator_scope(
    booking: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    service_only = await operator(db, salon.tenant.company_id, scopes=["service"])
    page = await booking.get("/ops", headers=service_only)
    assert page.status_code == 401
    assert "lacks the operator scope" in page.text
    login = await booking.post(
        "/ops/login",
        content="api_key=" + service_only["Authorization"].removeprefix("Bearer "),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert login.status_code == 401
    assert "set-cookie" not in login.headers
    cross_site = await booking.post(
        "/ops/login",
        content="api_key=x",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": "https://evil.example",
        },
    )
    assert cross_site.status_code == 403
    schema = (await booking.get("/openapi.json")).json()
    assert not [path for path in schema["paths"] if path.startswith("/ops")]
    assert {"/v1/ops/failed-bookings", "/v1/ops/overview"} <= set(schema["paths"])
