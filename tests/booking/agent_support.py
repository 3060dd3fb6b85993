"""Signed Retell requests against the booking app, as Retell sends them."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from sqlalchemy import update

from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.integrations.retell import signature as retell
from shared.models import Company
from tests.support.factories import Salon

RETELL_KEY = "key_test_0f1e2d3c4b5a69788796a5b4c3d2e1f0"
CALLER = "+491701234567"


async def enable_retell(db: Database, salon: Salon) -> None:
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            update(Company)
            .where(Company.id == salon.tenant.company_id)
            .values(retell_api_key=RETELL_KEY)
        )


def signed(
    body: dict[str, Any] | bytes, key: str = RETELL_KEY, ts: int | None = None
) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    stamp = retell.now_ms() if ts is None else ts
    return raw, {
        "X-Retell-Signature": retell.sign(raw, key, stamp),
        "Content-Type": "application/json",
    }


async def call_function(
    client: httpx.AsyncClient,
    salon: Salon,
    name: str,
    args: dict[str, Any],
    *,
    call_id: str | None = None,
    caller: str | None = CALLER,
) -> httpx.Response:
    call: dict[str, Any] = {
        "call_id": call_id or f"call_{uuid.uuid4().hex[:12]}",
        "agent_id": "agent_test",
        "call_type": "phone_call",
        "to_number": salon.phone_number,
        "direction": "inbound",
    }
    if caller is not None:
        call["from_number"] = caller
    raw, headers = signed({"call": call, "name": name, "args": args})
    return await client.post(f"/v1/retell/functions/{name}", content=raw, headers=headers)
