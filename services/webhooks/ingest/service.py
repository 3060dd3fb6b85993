"""Webhook ingestion: size -> signature -> schema -> store once -> enqueue after commit.

This is the hot path, and Cal.com never retries a delivery we fail, so it does the least that
makes the event durable: at most one company lookup (the Cal.com secret is cached in-process),
one INSERT that cannot fail on a duplicate, and one Redis push after the commit. Everything
else happens in the worker (`services/webhooks/jobs.py`). The stored row is the record: if the
push fails, the worker's sweeper re-enqueues events left pending.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

import sqlalchemy as sa
from arq.connections import ArqRedis
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import IntegrityError
from starlette.requests import ClientDisconnect, Request

from services.webhooks.ingest.handling import PROCESS_JOB, job_id
from services.webhooks.ingest.payloads import parse_object, validate_calcom, validate_retell
from services.webhooks.ingest.schemas import Accepted, Repeated
from shared.db.engine import WRITE, Database
from shared.db.scoped import execute, scoped
from shared.db.tenancy import PER_CALL, SYSTEM
from shared.db.types import new_id, utcnow
from shared.errors import BadRequest, PayloadTooLarge, Unauthorized
from shared.integrations.retell.auth import authenticate as retell_authenticate
from shared.jobs.outbox import EnqueueHealth
from shared.jobs.queue import WEBHOOKS_QUEUE, enqueue_unique
from shared.models import Company, WebhookEvent
from shared.observability.logging import correlation_id_var

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
SECRET_TTL_S = 30.0  # a changed Cal.com secret is honoured within this (and at once on a miss)
REFRESH_ON_MISMATCH_S = 1.0  # a wrong signature re-reads the secret at most once a second
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
EVENTS = cast(sa.Table, WebhookEvent.__table__)
IN_PROGRESS = frozenset({"pending", "processing"})


@dataclass(frozen=True)
class Receipt:
    """What the sender is told: 202 accepted (first delivery) or 200 for a repeat."""

    event_id: str
    created: bool
    status: str  # the stored row's status

    @property
    def http_status(self) -> int:
        return 202 if self.created else 200

    def answer(self) -> Accepted | Repeated:
        if self.created:
            return Accepted(status="accepted", event_id=self.event_id)
        repeat: Literal["in_progress", "already_processed"] = (
            "in_progress" if self.status in IN_PROGRESS else "already_processed"
        )
        return Repeated(status=repeat, event_id=self.event_id)


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The raw body, refused with 413 as soon as it passes `limit` bytes (whatever
    Content-Length claims: a chunked or lying sender is cut off while streaming)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge("The request body is larger than 1 MiB.")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge("The request body is larger than 1 MiB.")
            chunks.append(chunk)
    except ClientDisconnect:
        raise BadRequest("The client disconnected before sending the whole body.") from None
    return b"".join(chunks)


# --- Cal.com secrets ---------------------------------------------------------------------------


# Scoped to the company the URL names (the only one whose secret this may read).
_SECRET = scoped(sa.select(Company.calcom_webhook_secret).where(Company.active.is_(True)), PER_CALL)


class SecretCache:
    """Each company's Cal.com webhook secret for up to `ttl_s`, so a warm delivery costs no
    lookup. A signature that does not match re-reads the secret (at most once a second per
    company), so a rotated secret works at once and the old one stops within the TTL."""

    def __init__(self, ttl_s: float = SECRET_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, str | None]] = {}

    def get(self, company_id: str, now: float) -> tuple[float, str | None] | None:
        """(read at, secret) while fresh, else None."""
        entry = self._entries.get(company_id)
        if entry is None or now - entry[0] >= self.ttl_s:
            return None
        return entry

    def put(self, company_id: str, secret: str | None, now: float) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[company_id] = (now, secret)


async def _load_secret(db: Database, company_id: str) -> str | None:
    async with db.transaction(company_id, write=False) as session:
        result = await execute(session, _SECRET, company_id=company_id)
        secret: str | None = result.scalar()
        return secret


def signature_matches(raw: bytes, secret: str | None, header: str) -> bool:
    """Cal.com's `X-Cal-Signature-256`: hex HMAC-SHA256 of the raw body, constant-time."""
    if not secret:
        return False
    expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.lower())


async def verify_calcom(
    db: Database, cache: SecretCache, company_id: str, raw: bytes, header: str | None
) -> None:
    """401 unless `header` signs `raw` with the company's secret (unknown company: 401 too)."""
    if not header or not _HEX_DIGEST.fullmatch(header):
        raise Unauthorized("Missing or malformed X-Cal-Signature-256.")
    if not company_id or len(company_id) > 36:
        raise Unauthorized("Invalid Cal.com signature.")
    now = time.monotonic()
    cached = cache.get(company_id, now)
    if cached is not None:
        read_at, secret = cached
        if signature_matches(raw, secret, header):
            return
        if now - read_at < REFRESH_ON_MISMATCH_S:
            raise Unauthorized("Invalid Cal.com signature.")
    secret = await _load_secret(db, company_id)
    cache.put(company_id, secret, now)
    if not signature_matches(raw, secret, header):
        raise Unauthorized("Invalid Cal.com signature.")


# --- storing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewEvent:
    company_id: str | None
    source: Literal["calcom", "retell"]
    event_id: str  # the dedupe key
    event_type: str
    payload: dict[str, Any]
    correlation_id: str | None
    status: Literal["pending", "ignored"] = "pending"
    reason: str | None = None


# Built once: constructing a statement per request costs more than executing it.
# SQLite: ON CONFLICT DO NOTHING. MariaDB: INSERT IGNORE, not ON DUPLICATE KEY UPDATE, which
# reports rowcount 1 for both outcomes under the CLIENT_FOUND_ROWS flag the drivers set.
# IGNORE would also swallow other errors, so everything it could swallow is validated first
# (lengths, the status enum) or checked after (a vanished company: no row either way).
# Ingestion stores before the worker attributes anything, and the dedupe key (source,
# event_id) is unique across companies: SYSTEM scope (the row's company_id is its own value).
_INSERT_SQLITE = scoped(
    sqlite.insert(EVENTS).on_conflict_do_nothing(index_elements=["source", "event_id"]), SYSTEM
)
_INSERT_MARIADB = scoped(sa.insert(EVENTS).prefix_with("IGNORE"), SYSTEM)
# The same INSERT with every column a named parameter, for the raw pool (shared/db/raw_sql.py):
# one autocommit statement, one round trip, no SQLAlchemy per-call machinery.
_COLUMNS = (
    "id", "company_id", "source", "event_id", "event_type", "payload", "status",
    "correlation_id", "attempts", "error_message", "processed_at", "created_at", "updated_at",
)  # fmt: skip
_INSERT_RAW = _INSERT_MARIADB.values({name: sa.bindparam(name) for name in _COLUMNS})


def _insert(db: Database) -> Any:
    """The INSERT that turns a duplicate (source, event_id) into a no-op with rowcount 0."""
    return _INSERT_SQLITE if db.engine.dialect.name == "sqlite" else _INSERT_MARIADB


_EXISTING = scoped(
    sa.select(EVENTS.c.id, EVENTS.c.status).where(
        EVENTS.c.source == sa.bindparam("source"), EVENTS.c.event_id == sa.bindparam("event_id")
    ),
    SYSTEM,
)


async def store(db: Database, event: NewEvent) -> Receipt:
    """Store `event` once: the first delivery inserts, a repeat reads the stored row."""
    row_id = new_id()
    now = utcnow()
    values = {
        "id": row_id,
        "company_id": event.company_id,
        "source": event.source,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "payload": event.payload,
        "status": event.status,
        "correlation_id": event.correlation_id,
        "attempts": 0,
        "error_message": event.reason,
        "processed_at": now if event.status != "pending" else None,
        "created_at": now,
        "updated_at": now,
    }
    if db.raw is not None:  # MariaDB: the INSERT IGNORE commits by itself (autocommit)
        if await db.raw.execute(_INSERT_RAW, values, tenant=SYSTEM) == 1:
            return Receipt(row_id, created=True, status=event.status)
        params = {"source": event.source, "event_id": event.event_id}
        return _repeat(await db.raw.first(_EXISTING, params, tenant=SYSTEM))
    try:
        # A Core connection, no ORM session: one statement needs no unit of work. On SQLite
        # the write lock is taken at BEGIN (IMMEDIATE), as every writing transaction does.
        async with db.engine.connect() as connection:
            if db.is_sqlite:
                await connection.execution_options(**WRITE)
            async with connection.begin():
                result = await connection.execute(_insert(db), values)
                if result.rowcount == 1:
                    return Receipt(row_id, created=True, status=event.status)
                existing = (
                    await connection.execute(
                        _EXISTING, {"source": event.source, "event_id": event.event_id}
                    )
                ).first()
    except IntegrityError:  # SQLite: the company was deleted since its secret was cached
        raise Unauthorized("Unknown company.") from None
    return _repeat(existing)


def _repeat(existing: Any) -> Receipt:
    """The receipt of a delivery the INSERT did not store: a repeat of the stored row."""
    if existing is None:  # MariaDB's IGNORE dropped it: the company was deleted meanwhile
        raise Unauthorized("Unknown company.")
    return Receipt(existing.id, created=False, status=existing.status)


_enqueue_health = EnqueueHealth("webhook")


async def enqueue(pool: ArqRedis | None, event_id: str) -> bool:
    """Push the processing job; False (logged) when Redis fails: the sweeper retries."""
    if pool is None:
        return False
    try:
        await enqueue_unique(
            pool, PROCESS_JOB, event_id, job_id=job_id(event_id), queue=WEBHOOKS_QUEUE
        )
    except Exception as exc:  # Redis down must never fail an event that is already stored
        _enqueue_health.failed(exc, "webhook")  # once per outage; the sweeper re-enqueues
        return False
    _enqueue_health.succeeded()
    return True


async def _store_and_enqueue(db: Database, pool: ArqRedis | None, event: NewEvent) -> Receipt:
    receipt = await store(db, event)
    if receipt.created and event.status == "pending":
        await enqueue(pool, receipt.event_id)
    return receipt


# --- the two sources ---------------------------------------------------------------------------


async def ingest_calcom(
    db: Database,
    pool: ArqRedis | None,
    cache: SecretCache,
    company_id: str,
    raw: bytes,
    signature: str | None,
) -> Receipt:
    """A Cal.com delivery for `company_id`: verified, validated, stored once, enqueued."""
    await verify_calcom(db, cache, company_id, raw, signature)
    body = parse_object(raw)
    event = validate_calcom(company_id, body)
    new = NewEvent(
        company_id=company_id,
        source="calcom",
        event_id=event.dedupe_key,
        event_type=event.trigger,
        payload=body,
        correlation_id=correlation_id_var.get(),
    )
    if event.is_ping:  # Cal.com's "test" button: acknowledge, record, change nothing
        new = replace(new, status="ignored", reason="test ping")
    return await _store_and_enqueue(db, pool, new)


async def ingest_retell(
    db: Database, pool: ArqRedis | None, platform_key: str | None, raw: bytes, signature: str | None
) -> Receipt:
    """A Retell call event: verified with the tenant's (or the platform) key, stored once.

    The tenant comes from `call.to_number` / `call.agent_id`; an event no company claims but
    the platform key signs is stored with company_id NULL (see the events API for who sees it).
    """
    if not signature:
        raise Unauthorized("Missing X-Retell-Signature.")
    async with db.transaction(SYSTEM, write=False) as session:
        caller = await retell_authenticate(session, raw, signature, platform_key=platform_key)
    body = parse_object(raw)
    event = validate_retell(body)
    correlation_id_var.set(event.call_id)
    return await _store_and_enqueue(
        db,
        pool,
        NewEvent(
            company_id=caller.company_id,
            source="retell",
            event_id=event.dedupe_key,
            event_type=event.event,
            payload=body,
            correlation_id=event.call_id,
        ),
    )
