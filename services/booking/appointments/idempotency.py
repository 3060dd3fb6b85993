"""Idempotency keys (Stripe / IETF draft semantics) for POST /v1/appointments and agent calls.

The request first CLAIMS its key: an insert-if-absent under UNIQUE(company_id, key), in the same
transaction as the work, which later completes the row with the answer. A concurrent twin's
claim waits on the winner's uncommitted row (MySQL/MariaDB) or finds it committed (SQLite, whose
writers are serialized); either way it then reads the winner's answer on its own connection and
replays it. If the winner rolls back (a refusal), its claim vanishes and the twin proceeds. Same
key with another body: 422. No second connection is ever needed while locks are held.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.types import new_id, utcnow
from shared.errors import IdempotencyKeyReused, Replay
from shared.models import IdempotencyKey

RETENTION = timedelta(hours=48)
AGENT_NAMESPACE = uuid.UUID("2b0f6a5e-3c1d-4e8f-9a7b-6c5d4e3f2a1b")
MAX_KEY_LENGTH = 255


def fingerprint(payload: Any) -> str:
    """A stable hash of a request body (canonical JSON)."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def agent_key(call_id: str, function: str, args: dict[str, Any]) -> str:
    """UUID v5 of call id + function name + normalized args: a Retell retry books once."""
    normalized = {
        k: (v.strip().casefold() if isinstance(v, str) else v)
        for k, v in sorted(args.items())
        if v not in (None, "")
    }
    material = f"{call_id}|{function}|{json.dumps(normalized, sort_keys=True, default=str)}"
    return str(uuid.uuid5(AGENT_NAMESPACE, material))


def replay_or_refuse(row: IdempotencyKey, request_fingerprint: str) -> Replay:
    if row.request_fingerprint != request_fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used with a different request body.",
            field="Idempotency-Key",
        )
    return Replay(row.response_status or 200, row.response_body or {})


async def claim(session: AsyncSession, key: str, request_fingerprint: str) -> IdempotencyKey | None:
    """Claim `key` for this request; None when claimed, else the row of an earlier request."""
    company_id = session.info["tenant"]
    now = utcnow()
    values = {
        "id": new_id(),
        "company_id": company_id,
        "key": key,
        "request_fingerprint": request_fingerprint,
        "created_at": now,
        "expires_at": now + RETENTION,
    }
    if session.get_bind().dialect.name == "sqlite":
        stmt: Any = sqlite.insert(IdempotencyKey).values(values).on_conflict_do_nothing()
    else:
        stmt = mysql.insert(IdempotencyKey).values(values).prefix_with("IGNORE")
    result = await session.execute(stmt)
    if getattr(result, "rowcount", 1) == 1:
        return None
    row = (
        await session.execute(
            select(IdempotencyKey)
            .where(IdempotencyKey.key == key)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    return row


async def complete(session: AsyncSession, key: str, status: int, body: dict[str, Any]) -> None:
    """Store the answer on the claimed row (same transaction as the work)."""
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.key == key)
        .values(response_status=status, response_body=body)
        # The claimed row is not read again in this request: no evaluation of the criteria
        # against the session's objects (the ORM's "auto" synchronisation, per run).
        .execution_options(synchronize_session=False)
    )
