"""/docs (Swagger UI) and /redoc (ReDoc) work without internet: every script, stylesheet and
icon comes from the service itself (shared/web/docs.py), and in headless Chromium with the
network cut off both pages render while no request leaves 127.0.0.1."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import Services
from tests.support.migrations import migrate
from tests.support.servers import ServerGroup

CHROMIUM = "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# No network but loopback: every other host goes to a proxy that is not there (Chromium never
# proxies loopback) and resolves to nothing.
OFFLINE_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--proxy-server=http://127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
TITLES = {
    "booking": "Booking service",
    "policy": "Policy service",
    "webhooks": "Webhooks service",
    "notifications": "Notifications service",
}
# One operation per service that Swagger UI must list.
KNOWN_PATHS = {
    "booking": "/v1/appointments",
    "policy": "/v1/policies/evaluate",
    "webhooks": "/v1/webhooks/events",
    "notifications": "/v1/notification-configs",
}
SWAGGER_ASSETS = {
    "/docs/assets/swagger-ui.css",
    "/docs/assets/favicon.png",
    "/docs/assets/swagger-ui-bundle.js",
}
REDOC_ASSETS = {"/docs/assets/favicon.png", "/docs/assets/redoc.standalone.js"}
CONTENT_TYPES = {
    "/docs/assets/swagger-ui.css": "text/css; charset=utf-8",
    "/docs/assets/favicon.png": "image/png",
    "/docs/assets/swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "/docs/assets/redoc.standalone.js": "text/javascript; charset=utf-8",
}
# What each asset starts with or defines: the real file, not an error page.
MARKERS = {
    "/docs/assets/swagger-ui.css": b".swagger-ui{",
    "/docs/assets/favicon.png": b"\x89PNG\r\n\x1a\n",
    "/docs/assets/swagger-ui-bundle.js": b"SwaggerUIBundle",
    "/docs/assets/redoc.standalone.js": b"Redoc",
}


class _Urls(HTMLParser):
    """The URLs an HTML page makes the browser load (src, href, spec-url attributes)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "spec-url") and value is not None:
                self.urls.append(value)


def loaded_urls(html: str) -> list[str]:
    parser = _Urls()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize("service", sorted(TITLES))
async def test_docs_pages_load_their_assets_from_the_service(
    services: Services, service: str
) -> None:
    client = services.clients[service]
    for page, title, assets, spec in (
        ("/docs", "Swagger UI", SWAGGER_ASSETS, set()),
        ("/redoc", "ReDoc", REDOC_ASSETS, {"/openapi.json"}),
    ):
        answer = await client.get(page)  # no API key, like every asset below
        assert answer.status_code == 200, (page, answer.text)
        assert answer.headers["content-type"] == "text/html; charset=utf-8"
        assert f"<title>{TITLES[service]} - {title}</title>" in answer.text
        assert set(loaded_urls(answer.text)) == assets | spec
        assert "http://" not in answer.text and "https://" not in answer.text
        assert "//" not in "".join(loaded_urls(answer.text))
        for url in assets:
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert asset.headers["content-type"] == CONTENT_TYPES[url]
            assert MARKERS[url] in asset.content[:200_000], url
    swagger = (await client.get("/docs")).text
    assert "url: '/openapi.json'" in swagger
    assert '"validatorUrl": null' in swagger  # no badge fetched from validator.swagger.io
    redoc = (await client.get("/docs/assets/redoc.standalone.js")).content
    assert b"cdn.redoc.ly" not in redoc
    assert (await client.get("/docs/oauth2-redirect")).status_code == 200
    assert (await client.get("/docs/assets/other.js")).status_code == 404

    paths = set((await client.get("/openapi.json")).json()["paths"])
    assert KNOWN_PATHS[service] in paths
    assert not {path for path in paths if path.startswith(("/docs", "/redoc"))}


# Part two: the pages in headless Chromium, offline ------------------------------------


def _need_browser() -> Any:
    """Playwright's async API, or a skip (a failure under CI=true) saying what is missing."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (Debian package `chromium`)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the `playwright` Python package (pip install playwright)")
    if missing:
        message = "headless browser test needs " + " and ".join(missing)
        if IN_CI:
            pytest.fail(f"{message} (CI=true: required)", pytrace=False)
        pytest.skip(message)
    from playwright import async_api

    return async_api


class _Servers:
    """One uvicorn process per service, started on first use, on one migrated SQLite file."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.groups: dict[str, ServerGroup] = {}

    async def url(self, service: str) -> str:
        if service not in self.groups:
            group = ServerGroup(f"services.{service}.app:create", 1, self.env)
            await group.__aenter__()
            self.groups[service] = group
        return self.groups[service].urls[0]

    async def close(self) -> None:
        for group in self.groups.values():
            await group.__aexit__(None, None, None)


@pytest.fixture(scope="module")
async def servers(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[_Servers]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('docs') / 'docs.db'}"
    await migrate(url, "upgrade", "head")
    running = _Servers({"DATABASE_URL": url, "REDIS_URL": redis_url})
    try:
        yield running
    finally:
        await running.close()


@pytest.mark.parametrize("service", sorted(TITLES))
async def test_docs_render_offline_in_headless_chromium(servers: _Servers, service: str) -> None:
    async_api = _need_browser()
    base = await servers.url(service)
    async with httpx.AsyncClient() as client:
        document = (await client.get(f"{base}/openapi.json")).json()
    operations = {
        (method.upper(), path) for path, methods in document["paths"].items() for method in methods
    }
    title = TITLES[service]
    requested: list[str] = []
    async with async_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=OFFLINE_ARGS, headless=True
        )
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            context.on("request", lambda request: requested.append(request.url))
            page = await context.new_page()

            answer = await page.goto(f"{base}/docs")
            assert answer is not None and answer.status == 200
            path = KNOWN_PATHS[service]
            known = page.locator(f'.opblock .opblock-summary-path[data-path="{path}"]')
            await known.first.wait_for(timeout=20_000)
            listed = await page.eval_on_selector_all(
                ".opblock .opblock-summary",
                """blocks => blocks.map(block => [
                    block.querySelector('.opblock-summary-method').textContent,
                    block.querySelector('.opblock-summary-path').dataset.path,
                ])""",
            )
            assert {(method, path) for method, path in listed} == operations
            assert (await page.locator(".info .title").inner_text()).startswith(title)

            answer = await page.goto(f"{base}/redoc")
            assert answer is not None and answer.status == 200
            heading = page.locator("h1", has_text=title)
            await heading.wait_for(timeout=20_000)
            assert await heading.inner_text() == f"{title} (1.0.0)"
            sections = await page.eval_on_selector_all(
                '[data-section-id^="operation/"]',
                "elements => elements.map(element => element.dataset.sectionId)",
            )
            operation_ids = {
                f"operation/{operation['operationId']}"
                for methods in document["paths"].values()
                for operation in methods.values()
            }
            assert set(sections) == operation_ids

            # The recorder sees requests to other hosts, and the network is off for them.
            offline = await page.evaluate(
                "fetch('https://example.com/').then(() => 'online', () => 'offline')"
            )
            assert offline == "offline"
            assert requested.pop() == "https://example.com/"
        finally:
            await browser.close()

    network = [url for url in requested if urlsplit(url).scheme not in ("data", "blob")]
    assert {urlsplit(url).netloc for url in network} == {urlsplit(base).netloc}, network
    assert {urlsplit(url).path for url in network} >= (
        {"/docs", "/redoc", "/openapi.json"} | SWAGGER_ASSETS | REDOC_ASSETS
    ) - {"/docs/assets/favicon.png"}
