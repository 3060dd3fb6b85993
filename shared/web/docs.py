"""Swagger UI at /docs and ReDoc at /redoc, their scripts, stylesheet and favicon served by
the service itself from the `fastapi-offline` package: the pages work without internet.

The asset routes need no API key (like the pages) and stay out of the OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.responses import HTMLResponse, Response

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
ASSETS_URL = "/docs/assets"
# ReDoc's side menu shows Redocly's logo from their CDN; an empty image fails to load and
# ReDoc then leaves the logo out, so the page asks no other host.
REDOCLY_LOGO = (b"https://cdn.redoc.ly/redoc/logo-mini.svg", b"data:,")
# Swagger UI would send the document to validator.swagger.io for its "valid" badge.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}


@dataclass(frozen=True)
class Asset:
    """One file of the package's `static/` folder, served at ASSETS_URL/<name>."""

    name: str
    media_type: str
    replace: tuple[bytes, bytes] | None = None


ASSETS = (
    Asset("swagger-ui-bundle.js", "text/javascript"),
    Asset("swagger-ui.css", "text/css"),
    Asset("redoc.standalone.js", "text/javascript", REDOCLY_LOGO),
    Asset("favicon.png", "image/png"),
)


@cache
def _content(asset: Asset) -> bytes:
    """The file's bytes (read once per process)."""
    content = files("fastapi_offline").joinpath("static", asset.name).read_bytes()
    if asset.replace is not None:
        old, new = asset.replace
        content = content.replace(old, new)
    return content


def _asset_endpoint(asset: Asset) -> Callable[[Request], Awaitable[Response]]:
    async def serve(_request: Request) -> Response:
        return Response(
            _content(asset),
            media_type=asset.media_type,
            headers={"Cache-Control": "public, max-age=3600"},
        )

    return serve


def install_docs(app: FastAPI) -> None:
    """Serve /docs, /docs/oauth2-redirect, /redoc and their assets (create the app with
    docs_url=None and redoc_url=None)."""
    openapi_url = app.openapi_url or "/openapi.json"

    def root(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    async def swagger_ui(request: Request) -> HTMLResponse:
        base = root(request)
        return get_swagger_ui_html(
            openapi_url=base + openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=base + OAUTH2_REDIRECT_URL,
            swagger_js_url=f"{base}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{base}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{base}{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )

    async def oauth2_redirect(_request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        base = root(request)
        return get_redoc_html(
            openapi_url=base + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{base}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{base}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )

    app.add_route(DOCS_URL, swagger_ui, include_in_schema=False)
    app.add_route(OAUTH2_REDIRECT_URL, oauth2_redirect, include_in_schema=False)
    app.add_route(REDOC_URL, redoc, include_in_schema=False)
    for asset in ASSETS:
        app.add_route(f"{ASSETS_URL}/{asset.name}", _asset_endpoint(asset), include_in_schema=False)
