"""The baseline: a bare Starlette app doing only the unavoidable database work of each
operation, served by uvicorn exactly like our services, so `ours / baseline` is the cost of
our layers (FastAPI, auth, tenancy, ORM, validation, slot computation, outbox, metrics).

No pre-ping, no ORM, no auth, no JSON schema: SQLAlchemy core on asyncmy at READ COMMITTED,
the same pool size as the services. Factory: `tests.bench.baseline:create` (uvicorn --factory);
DATABASE_URL and REDIS_URL come from the environment.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

LIVE = ("confirmed", "pending")


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status_code=status, media_type="application/json")


def _instant(text: str) -> datetime:
    """An ISO instant as naive UTC, as the DATETIME(6) columns store it."""
    return datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)


async def ready(request: Request) -> Response:
    async with request.app.state.engine.connect() as conn:
        await conn.execute(sa.text("SELECT 1"))
    return _json({"status": "ok"})


async def availability(request: Request) -> Response:
    """One SELECT: the live appointments of the given staff in [from, to)."""
    staff = request.query_params.getlist("staff_id")
    statement = sa.text(
        "SELECT staff_id, starts_at, ends_at, blocked_from, blocked_until FROM appointments "
        "WHERE staff_id IN :staff AND status IN :live "
        "AND blocked_from >= :lo AND blocked_from < :hi"
    ).bindparams(sa.bindparam("staff", expanding=True), sa.bindparam("live", expanding=True))
    params = {
        "staff": staff,
        "live": list(LIVE),
        "lo": _instant(request.query_params["from"]),
        "hi": _instant(request.query_params["to"]),
    }
    async with request.app.state.engine.connect() as conn:
        rows = (await conn.execute(statement, params)).all()
    return _json({"appointments": len(rows)})


_LOCK = sa.text("SELECT id FROM staff WHERE id = :staff FOR UPDATE")
_OVERLAP = sa.text(
    "SELECT id FROM appointments WHERE staff_id = :staff AND status IN ('confirmed', 'pending') "
    "AND blocked_from >= :scan_from AND blocked_from < :until AND blocked_until > :start"
)
_REFERENCE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_INSERT = sa.text(
    "INSERT INTO appointments (id, company_id, branch_id, service_id, staff_id, customer_id, "
    "starts_at, ends_at, blocked_from, blocked_until, status, sync_status, source, price, "
    "currency, version, created_at, updated_at, reference) VALUES (:id, :company, :branch, "
    ":service, :staff, :customer, :start, :end, :start, :end, 'confirmed', 'local_only', 'api', "
    "28.00, 'EUR', 1, :now, :now, :reference)"
)
_ROUTE = sa.text(
    "SELECT c.id, c.retell_api_key, p.branch_id FROM phone_numbers p "
    "JOIN companies c ON c.id = p.company_id WHERE p.number = :number AND p.active AND c.active"
)


async def _book(conn: Any, body: dict[str, Any]) -> Response:
    """BEGIN; staff row FOR UPDATE; overlap SELECT; INSERT; COMMIT."""
    start = _instant(body["start"])
    end = start + timedelta(minutes=int(body["minutes"]))
    new_id = str(uuid.uuid4())
    async with conn.begin():
        await conn.execute(_LOCK, {"staff": body["staff_id"]})
        clash = await conn.execute(
            _OVERLAP,
            {
                "staff": body["staff_id"],
                "scan_from": start - timedelta(hours=24),
                "until": end,
                "start": start,
            },
        )
        if clash.first() is not None:
            return _json({"error": "slot_taken"}, 409)
        await conn.execute(
            _INSERT,
            {
                "id": new_id,
                "company": body["company_id"],
                "branch": body["branch_id"],
                "service": body["service_id"],
                "staff": body["staff_id"],
                "customer": body["customer_id"],
                "start": start,
                "end": end,
                "now": datetime.now(UTC).replace(tzinfo=None),
                # NOT NULL, unique per company (ADR 0011; shared/security/references.py's alphabet)
                "reference": "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(6)),
            },
        )
    return _json({"id": new_id}, 201)


async def book(request: Request) -> Response:
    body = json.loads(await request.body())
    async with request.app.state.engine.connect() as conn:
        return await _book(conn, body)


async def agent_book(request: Request) -> Response:
    """The agent's unavoidable extra: find the tenant by the called number, then book."""
    body = json.loads(await request.body())
    async with request.app.state.engine.connect() as conn:
        route = (await conn.execute(_ROUTE, {"number": body["to_number"]})).first()
        await conn.rollback()  # end the read's implicit transaction before the booking's BEGIN
        if route is None:
            return _json({"error": "unknown number"}, 404)
        return await _book(conn, body)


_SUBJECT = sa.text(
    "SELECT a.branch_id, a.service_id, a.staff_id, a.starts_at, a.status, a.price, "
    "a.customer_id, b.timezone FROM appointments a JOIN branches b ON b.id = a.branch_id "
    "WHERE a.id = :id AND a.company_id = :company"
)
_CHANGES = sa.text(
    "SELECT created_at FROM appointment_modifications WHERE customer_id = :customer "
    "AND modification_type = 'cancel' AND created_at > :since"
)


async def evaluate(request: Request) -> Response:
    """The appointment, the customer's recent changes (quota), the cached config (Redis GET)."""
    body = json.loads(await request.body())
    async with request.app.state.engine.connect() as conn:
        row = (
            await conn.execute(
                _SUBJECT, {"id": body["appointment_id"], "company": body["company_id"]}
            )
        ).first()
        if row is None:
            return _json({"error": "not_found"}, 404)
        since = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=30)
        changes = (
            await conn.execute(_CHANGES, {"customer": row.customer_id, "since": since})
        ).all()
    config = await request.app.state.redis.get(f"bench:policy:{body['company_id']}")
    return _json({"allowed": True, "changes": len(changes), "cached": config is not None})


_BRANCH = sa.text("SELECT id FROM branches WHERE id = :branch AND company_id = :company")


async def effective(request: Request) -> Response:
    """The branch must be the company's (one indexed SELECT), then the cached config (GET)."""
    company, branch = request.query_params["company_id"], request.query_params["branch_id"]
    async with request.app.state.engine.connect() as conn:
        found = (await conn.execute(_BRANCH, {"branch": branch, "company": company})).first()
    if found is None:
        return _json({"error": "not_found"}, 404)
    key = f"bench:effective:{company}:{branch}"
    config = await request.app.state.redis.get(key)
    if config is None:  # the warm-up pass fills it
        config = json.dumps({"config": {"hours_before": 12}, "sources": {"hours_before": "branch"}})
        await request.app.state.redis.set(key, config, ex=300)
    return Response(config, media_type="application/json")


_WEBHOOK_INSERT = sa.text(
    "INSERT INTO webhook_events (id, company_id, source, event_id, event_type, payload, status, "
    "attempts, created_at, updated_at) VALUES (:id, :company, 'calcom', :key, :trigger, :payload, "
    "'pending', 0, :now, :now)"
)


async def webhook(request: Request) -> Response:
    """The unavoidable work of a webhook acknowledgement: HMAC-SHA256 of the raw body checked
    in constant time, one INSERT under the UNIQUE dedupe key, one Redis push, 202."""
    raw = await request.body()
    secret = os.environ["BENCH_WEBHOOK_SECRET"].encode()
    expected = hmac.new(secret, raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("x-cal-signature-256", "")):
        return _json({"error": "signature"}, 401)
    body = json.loads(raw)
    payload = body["payload"]
    key = hashlib.sha256(
        f"{body['triggerEvent']}|{payload['uid']}|{payload['startTime']}".encode()
    ).hexdigest()
    event_id = str(uuid.uuid4())
    now = datetime.now(UTC).replace(tzinfo=None)
    async with request.app.state.engine.begin() as conn:
        await conn.execute(
            _WEBHOOK_INSERT,
            {
                "id": event_id,
                "company": request.path_params["company"],
                "key": key,
                "trigger": body["triggerEvent"],
                "payload": raw.decode(),
                "now": now,
            },
        )
    await request.app.state.redis.rpush("bench:webhook-baseline", event_id)
    return _json({"status": "accepted", "event_id": event_id}, 202)


def create() -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.engine = create_async_engine(
            os.environ["DATABASE_URL"],
            isolation_level="READ COMMITTED",
            pool_size=10,
            max_overflow=20,
        )
        app.state.redis = Redis.from_url(os.environ["REDIS_URL"])
        await app.state.redis.set(f"bench:policy:{os.environ.get('BENCH_COMPANY_ID')}", "{}")
        try:
            yield
        finally:
            await app.state.redis.aclose()
            await app.state.engine.dispose()

    return Starlette(
        routes=[
            Route("/health/ready", ready),
            Route("/availability", availability),
            Route("/book", book, methods=["POST"]),
            Route("/agent_book", agent_book, methods=["POST"]),
            Route("/evaluate", evaluate, methods=["POST"]),
            Route("/effective", effective),
            Route("/webhook/{company}", webhook, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
