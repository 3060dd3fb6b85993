"""The development outbox of `appointments run` (issue 16): a mail catcher and SMS/WhatsApp sink.

One process, one event loop, loopback only:
- a real SMTP server (aiosmtpd) that keeps every message it is given;
- an HTTP server (uvicorn, Starlette) that speaks the gateway API of ADR 0007 for both phone
  channels, `POST /gateway/{sms|whatsapp}/v1/messages` (so SMS_PROVIDER_URL is
  `http://127.0.0.1:8025/gateway/sms`), with the bearer token and Idempotency-Key checks of a
  real gateway; and shows what arrived: `GET /` (the mail page), `GET /messages?ids=&limit=`
  (JSON `{"items": [...]}`, newest first), `GET /health`.

The last MAX_MESSAGES messages are kept in memory, each keyed by the notification delivery id
(email: `X-Notification-Id`, else the Message-ID `<id@appointments>`; gateway: the
Idempotency-Key), so the ops page can ask for its own company's deliveries only.

    python -m tools.dev_outbox [--smtp-port 1025] [--http-port 8025]   (token: DEV_OUTBOX_TOKEN)
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import itertools
import json
import os
import re
import secrets
import signal
import sys
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any
from urllib.parse import unquote

import uvicorn
from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from shared.config import Settings
from tools.dev_outbox_page import render_page

HOST = "127.0.0.1"
MAX_MESSAGES = 200
MAX_KEYS = 10 * MAX_MESSAGES  # Idempotency-Keys remembered (a retry comes within minutes)
DEFAULT_LIMIT = 50
TOKEN_ENV = "DEV_OUTBOX_TOKEN"
PHONE_CHANNELS = ("sms", "whatsapp")
GATEWAY_FIELDS = frozenset({"channel", "to", "body", "sender"})
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
MESSAGE_ID = re.compile(r"<(.+)@appointments>")
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class CaughtMessage:
    """One message as the customer would have got it."""

    id: str
    channel: str  # "email", "sms" or "whatsapp"
    delivery_id: str | None
    sender: str | None  # the From header; the gateway's optional `sender`
    to: str
    subject: str | None
    body: str
    html: str | None
    received_at: datetime  # UTC

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel": self.channel,
            "delivery_id": self.delivery_id,
            "from": self.sender,
            "to": self.to,
            "subject": self.subject,
            "body": self.body,
            "html": self.html,
            "received_at": self.received_at.isoformat(),
        }


class Outbox:
    """What arrived, newest last; all access from the one event loop (no locks)."""

    def __init__(self, token: str, capacity: int = MAX_MESSAGES) -> None:
        self.token = token
        self.messages: deque[CaughtMessage] = deque(maxlen=capacity)
        self._keys: OrderedDict[str, tuple[dict[str, Any], CaughtMessage]] = OrderedDict()
        self._ids = itertools.count(1)

    def next_id(self) -> str:
        return f"msg_{next(self._ids):06d}"

    def add(self, message: CaughtMessage) -> None:
        self.messages.append(message)

    def latest(self, delivery_ids: set[str] | None, limit: int) -> list[CaughtMessage]:
        """Newest first; only those of `delivery_ids` when given."""
        found = (
            m for m in reversed(self.messages) if not delivery_ids or m.delivery_id in delivery_ids
        )
        return list(itertools.islice(found, limit))

    def gateway(self, channel: str, key: str, body: dict[str, Any]) -> JSONResponse:
        """Accept a checked gateway request: 201 new, 200 the same key and body again."""
        if key in self._keys:
            first_body, first = self._keys[key]
            if first_body != body:
                return _gateway_error(422, "Idempotency-Key reused with a different request")
            return JSONResponse({"id": first.id, "status": "queued"}, status_code=200)
        message = CaughtMessage(
            id=self.next_id(),
            channel=channel,
            delivery_id=key,
            sender=body.get("sender"),
            to=body["to"],
            subject=None,
            body=body["body"],
            html=None,
            received_at=datetime.now(UTC),
        )
        self.add(message)
        self._keys[key] = (body, message)
        while len(self._keys) > MAX_KEYS:
            self._keys.popitem(last=False)
        return JSONResponse({"id": message.id, "status": "queued"}, status_code=201)


# --- SMTP ----------------------------------------------------------------------------------------


def delivery_id_of(mail: EmailMessage) -> str | None:
    """The notification delivery id: X-Notification-Id, else the Message-ID's local part."""
    header = mail.get("X-Notification-Id")
    if header and str(header).strip():
        return str(header).strip()
    match = MESSAGE_ID.fullmatch(str(mail.get("Message-ID", "")).strip())
    return unquote(match.group(1)) if match else None


def _part(mail: EmailMessage, subtype: str) -> str | None:
    try:
        part = mail.get_body(preferencelist=(subtype,))
        return None if part is None else str(part.get_content())
    except (KeyError, LookupError, ValueError):  # an unknown charset or a broken part
        return None


def caught_email(outbox: Outbox, raw: bytes, rcpt_tos: Iterable[str]) -> CaughtMessage:
    """The message of one SMTP DATA (lines end in CRLF on the wire)."""
    parsed = BytesParser(policy=policy.default).parsebytes(raw.replace(b"\r\n", b"\n"))
    assert isinstance(parsed, EmailMessage)
    subject = parsed.get("Subject")
    html = _part(parsed, "html")
    text = _part(parsed, "plain")
    return CaughtMessage(
        id=outbox.next_id(),
        channel="email",
        delivery_id=delivery_id_of(parsed),
        sender=str(parsed.get("From", "")) or None,
        to=str(parsed.get("To", "")) or ", ".join(rcpt_tos),
        subject=None if subject is None else str(subject),
        body=(text or "").removesuffix("\n"),  # set_content ends every text in a newline
        html=html,
        received_at=datetime.now(UTC),
    )


class CatchingHandler:
    """aiosmtpd handler: accept every recipient, keep every message."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        self.outbox.add(caught_email(self.outbox, raw, envelope.rcpt_tos))
        return "250 2.0.0 Message caught (development outbox)"


# --- HTTP ----------------------------------------------------------------------------------------


def _gateway_error(status: int, text: str) -> JSONResponse:
    return JSONResponse({"error": text}, status_code=status)


def gateway_problems(channel: str, body: Any) -> list[str]:
    """What is wrong with a gateway request body, as ADR 0007's gateway says it."""
    if not isinstance(body, dict):
        return ["body must be a JSON object"]
    problems = [f"unknown field {name!r}" for name in sorted(set(body) - GATEWAY_FIELDS)]
    problems += [
        f"missing field {name!r}" for name in ("channel", "to", "body") if name not in body
    ]
    if "channel" in body and body["channel"] != channel:
        problems.append(f"channel must be {channel!r} on /gateway/{channel}")
    if "to" in body and not (isinstance(body["to"], str) and E164.fullmatch(body["to"])):
        problems.append("to must be an E.164 number such as +491701234567")
    if "body" in body and not (isinstance(body["body"], str) and body["body"].strip()):
        problems.append("body must be a non-empty string")
    if "sender" in body and not (isinstance(body["sender"], str) and body["sender"].strip()):
        problems.append("sender must be a non-empty string when given")
    return problems


def _invalid(field: str, detail: str) -> JSONResponse:
    """422 problem+json naming the field, shaped as the services' (shared/web/problems.py,
    not imported: it would double this small process' start-up time)."""
    body = {
        "type": "https://errors.appointments.local/validation_error",
        "title": "Invalid input",
        "status": 422,
        "detail": detail,
        "code": "validation_error",
        "field": field,
        "errors": [{"field": field, "message": detail}],
    }
    return JSONResponse(body, status_code=422, media_type="application/problem+json")


def create_app(outbox: Outbox, smtp_port: int | None = None) -> Starlette:
    """The gateway, the mail page and its JSON, over `outbox`."""

    async def send(request: Request) -> Response:
        channel = request.path_params["channel"]
        if channel not in PHONE_CHANNELS:
            return _gateway_error(404, f"no gateway for {channel!r}: sms or whatsapp")
        presented = request.headers.get("authorization", "")
        if not hmac.compare_digest(presented.encode(), f"Bearer {outbox.token}".encode()):
            return _gateway_error(401, "invalid or missing bearer token")
        key = request.headers.get("idempotency-key", "").strip()
        if not key:
            return _gateway_error(400, "Idempotency-Key header is required")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _gateway_error(422, "body is not JSON")
        problems = gateway_problems(channel, body)
        if problems:
            return _gateway_error(422, "; ".join(problems))
        return outbox.gateway(channel, key, body)

    def _limit(request: Request) -> int | JSONResponse:
        raw = request.query_params.get("limit")
        if raw is None:
            return DEFAULT_LIMIT
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_MESSAGES:
            return _invalid("limit", f"limit must be a whole number from 1 to {MAX_MESSAGES}")
        return int(raw)

    def _ids(request: Request) -> set[str] | None:
        raw = request.query_params.get("ids")
        if raw is None:
            return None
        return {part.strip() for part in raw.split(",") if part.strip()}

    async def messages(request: Request) -> Response:
        limit = _limit(request)
        if isinstance(limit, JSONResponse):
            return limit
        ids = _ids(request)
        if ids is not None and not ids:
            return JSONResponse({"items": []})
        return JSONResponse({"items": [m.as_json() for m in outbox.latest(ids, limit)]})

    async def page(request: Request) -> Response:
        limit = _limit(request)
        if isinstance(limit, JSONResponse):
            return limit
        shown = outbox.latest(None, limit)
        html = render_page(shown, total=len(outbox.messages), smtp_port=smtp_port)
        return HTMLResponse(html, headers=PAGE_HEADERS)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "messages": len(outbox.messages)})

    return Starlette(
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/messages", messages, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/gateway/{channel}/v1/messages", send, methods=["POST"]),
        ]
    )


# --- the process ---------------------------------------------------------------------------------


async def serve(smtp_port: int, http_port: int, token: str, host: str = HOST) -> None:
    """Run the SMTP and the HTTP server until uvicorn is told to stop (SIGINT/SIGTERM)."""
    outbox = Outbox(token)
    loop = asyncio.get_running_loop()
    smtp = await loop.create_server(
        lambda: SMTP(CatchingHandler(outbox), hostname="localhost", enable_SMTPUTF8=True),
        host=host,
        port=smtp_port,
    )
    config = uvicorn.Config(
        create_app(outbox, smtp_port),
        host=host,
        port=http_port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    try:
        await uvicorn.Server(config).serve()
    finally:
        smtp.close()
        await smtp.wait_closed()


def _stop(signum: int, _frame: object) -> None:
    # uvicorn re-raises the signal it shut down on: end here, with exit code 0.
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    settings = Settings()
    parser = argparse.ArgumentParser(
        prog="python -m tools.dev_outbox",
        description="Catch e-mail (SMTP) and SMS/WhatsApp (gateway API) on 127.0.0.1 and show "
        "them on a web page. The gateway token comes from DEV_OUTBOX_TOKEN.",
    )
    parser.add_argument("--smtp-port", type=int, default=settings.dev_outbox_smtp_port)
    parser.add_argument("--http-port", type=int, default=settings.dev_outbox_http_port)
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV) or ""
    if not token:
        token = secrets.token_urlsafe(24)
        print(f"gateway token (no {TOKEN_ENV} set): {token}", flush=True)
        print(f"mail page: http://{HOST}:{args.http_port}/", flush=True)
    signal.signal(signal.SIGTERM, _stop)
    try:
        asyncio.run(serve(args.smtp_port, args.http_port, token))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
