"""`/ops`: the owner's page, server-rendered (no JavaScript): today's honest headline,
schedule per staff member, callbacks, failing integrations by cause and the failed bookings,
in German or English (`?lang=de|en`, else Accept-Language, else German for a company in a
European zone; every label from `i18n.LABELS`).

Behind an operator key: `Authorization: Bearer <key>`, or for a browser a session opened by
the login form: an HttpOnly, SameSite=Strict cookie scoped to /ops that holds an opaque token,
never the key (services/booking/ops/session.py; revoking the key ends the session). The cookie
is `Secure` when the page is served over TLS: the request's scheme is https (uvicorn sets it
from X-Forwarded-Proto of a proxy in FORWARDED_ALLOW_IPS), or any X-Forwarded-Proto says
https (a forged one can only make the cookie stricter). Autoescaping is on for every template;
the answers forbid caching, framing, scripts and foreign form targets. The routes are not part
of the OpenAPI schema.
"""

from __future__ import annotations

from datetime import UTC
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from services.booking.ops import chart_labels, i18n
from services.booking.ops import messages as ops_messages
from services.booking.ops import service as ops_service
from services.booking.ops import session as ops_session
from shared.db.types import utcnow
from shared.errors import AppError, Forbidden, PayloadTooLarge, RateLimited
from shared.local_time import zone_of
from shared.web.auth import Principal, authenticate
from shared.web.deps import READ_ONLY, Session

router = APIRouter(include_in_schema=False)
TEMPLATES = Path(__file__).parent.parent / "templates" / "ops"
COOKIE = ops_session.COOKIE
COOKIE_MAX_AGE_S = 8 * 3600
MAX_FORM_BYTES = 4096
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make Origin "null"
}


@cache
def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = templates().get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _over_tls(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded.split(",")[0].strip().lower() == "https"


async def _operator(request: Request, session: Session, key: str) -> Principal | None:
    """The operator behind `key`, or None (invalid, revoked, no operator scope)."""
    credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=key)
    try:
        principal = await authenticate(request, session, credentials)
    except RateLimited:
        raise
    except AppError:
        return None
    return principal if principal.has("operator") else None


def _language(request: Request, lang: str | None, timezone: str | None = None) -> str:
    return i18n.choose_language(lang, request.headers.get("accept-language"), timezone)


def _login_page(
    status: int, lang: str, error: str | None = None, requested: str | None = None
) -> HTMLResponse:
    fmt = i18n.Formatter(lang, UTC)
    lang_param = requested if requested in i18n.LANGUAGES else None
    response = render(
        "login.html",
        status,
        t=fmt.t,
        lang=lang,
        error=error and fmt.t(error),
        lang_param=lang_param,
    )
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _same_origin(request: Request) -> bool:
    """A form post from our own page, or from a client that is no browser (curl sends neither
    Sec-Fetch-Site nor Origin). An opaque origin ("null") is refused."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def headline(
    fmt: i18n.Formatter,
    *,
    attempts: int,
    fully: int,
    sync_failed: int,
    sync_waiting: int,
    confirmations: int,
    failed: int,
    refused: int,
) -> tuple[str, str]:
    """The page's first line and its state: "ok" only when every attempt of today fully
    succeeded (and there was one), "warn" from 90 %, else "bad"; "none" without attempts."""
    if attempts == 0:
        return "none", fmt.t("headline.none")
    text = fmt.t("headline", ok=fully, total=attempts)
    reasons = [
        fmt.t(key, n=n)
        for key, n in (
            ("reason.failed", failed),
            ("reason.refused", refused),
            ("reason.sync_failed", sync_failed),
            ("reason.sync_waiting", sync_waiting),
            ("reason.confirmation", confirmations),
        )
        if n
    ]
    if reasons:
        text += ": " + ", ".join(reasons)
    if fully == attempts:
        return "ok", text
    return ("warn" if fully / attempts >= 0.9 else "bad"), text


@router.get("/ops", response_class=HTMLResponse)
async def ops_page(
    request: Request,
    session: Session,
    hours: Annotated[int, Query(ge=1, le=168)] = 24,
    lang: Annotated[Literal["de", "en"] | None, Query(description="Page language")] = None,
) -> Response:
    key = _presented_key(request)
    token = None if key else request.cookies.get(COOKIE)
    if key:
        principal = await _operator(request, session, key)
    elif token:
        principal = await ops_session.session_principal(request, session, token)
    else:
        principal = None
    if principal is None:
        error = "login.invalid" if key else None
        if token:
            error = "login.ended"
        response = _login_page(401, _language(request, lang), error, lang)
        if token:
            _forget_cookie(response)
        return response
    now = utcnow()
    view = await ops_service.owner_page(
        session, principal.company_id, request.app.state.redis, now, hours
    )
    tz = view.overview.timezone
    language = _language(request, lang, tz)
    outbox_url = request.app.state.settings.dev_outbox_url
    messages = await ops_messages.recent_messages(session, principal.company_id, outbox_url)
    fmt = i18n.Formatter(language, zone_of(tz))
    today = view.overview.bookings_today
    state, text = headline(
        fmt,
        attempts=today.attempts,
        fully=today.fully_succeeded,
        sync_failed=today.not_in_calcom,
        sync_waiting=today.calcom_waiting,
        confirmations=today.confirmations_failed,
        failed=today.failed,
        refused=view.overview.refused_unrecorded_today or 0,
    )
    return render(
        "ops.html",
        page=view,
        overview=view.overview,
        failures=view.failures,
        hours=hours,
        lang=language,
        lang_param=lang,
        fmt=fmt,
        t=fmt.t,
        headline_state=state,
        headline_text=text,
        company_id=principal.company_id,
        company_name=view.company_name,
        cookie_login=token is not None,
        messages=messages,
        outbox_url=outbox_url and outbox_url.rstrip("/") + "/",
        **chart_labels.chart_context(view.trends, fmt),
    )


@router.get("/ops/login", response_class=HTMLResponse)
async def login_form(
    request: Request,
    lang: Annotated[Literal["de", "en"] | None, Query(description="Page language")] = None,
) -> Response:
    return _login_page(200, _language(request, lang), requested=lang)


@router.post("/ops/login", response_class=HTMLResponse, openapi_extra=READ_ONLY)
async def login(request: Request, session: Session) -> Response:
    if not _same_origin(request):
        raise Forbidden("Cross-site login is not allowed.")
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        raise PayloadTooLarge("The login form is too large.")
    fields = parse_qs(raw.decode("utf-8", errors="replace"), max_num_fields=5)
    key = (fields.get("api_key") or [""])[0].strip()
    requested = (fields.get("lang") or [""])[0]
    lang = requested if requested in i18n.LANGUAGES else None
    principal = await _operator(request, session, key) if key else None
    if principal is None:
        return _login_page(401, _language(request, lang), "login.invalid", lang)
    token = await ops_session.open_session(request.app.state.redis, principal, COOKIE_MAX_AGE_S)
    target = f"/ops?lang={lang}" if lang else "/ops"
    response = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
    response.set_cookie(
        COOKIE,
        token,
        max_age=COOKIE_MAX_AGE_S,
        path="/ops",
        httponly=True,
        samesite="strict",
        secure=_over_tls(request),
    )
    return response


def _forget_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/ops", httponly=True, samesite="strict")


@router.post("/ops/logout")
async def logout(request: Request) -> Response:
    if not _same_origin(request):
        raise Forbidden("Cross-site logout is not allowed.")
    token = request.cookies.get(COOKIE)
    if token:
        await ops_session.close_session(request.app.state.redis, token)
    response = RedirectResponse("/ops/login", status_code=303)
    _forget_cookie(response)
    return response
