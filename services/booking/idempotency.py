"""Idempotency keys (Stripe / IETF draft semantics) for POST /v1/appointments and agent calls.

The key row is written in the SAME transaction as the booking, holding the answer; the UNIQUE
(company_id, key) constraint is the guard. A concurrent twin either waits on the winner's locks
and then finds the stored answer, or loses the UNIQUE race at its own insert, rolls back
everything it did, and replays the winner's answer. Same key with another body: 422.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.engine import Database
from shared.db.types import utcnow
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


async def find(session: AsyncSession, key: str) -> IdempotencyKey | None:
    result = await session.execute(select(IdempotencyKey).where(IdempotencyKey.key == key))
    return result.scalar_one_or_none()


async def find_committed(db: Database, company_id: str, key: str) -> IdempotencyKey | None:
    """Look the key up on a fresh connection (the current transaction may be failed)."""
    async with db.transaction(company_id, write=False) as session:
        return await find(session, key)


def record(
    session: AsyncSession, key: str, request_fingerprint: str, status: int, body: dict[str, Any]
) -> IdempotencyKey:
    now = utcnow()
    row = IdempotencyKey(
        key=key,
        request_fingerprint=request_fingerprint,
        response_status=status,
        response_body=body,
        created_at=now,
        expires_at=now + RETENTION,
    )
    session.add(row)
    return row
