"""Shared helpers of the webhook ingestion tests: a webhooks app of our own, signing, and a look
into the ARQ queue in Redis (the tests inspect the real `arq:queue:webhooks` zset)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import sqlalchemy as sa
from arq.jobs import deserialize_job
from fastapi import FastAPI
from redis.asyncio import Redis

from services.webhooks.ingest.handling import job_id
from shared.config import Settings
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.jobs.queue import WEBHOOKS_QUEUE
from shared.models import Company, WebhookEvent
from tests.support.contracts import CONTRACTS

PLATFORM_RETELL_KEY = "key_platform_webhooks_0123456789abcdef"
CALCOM_SECRET = "whsec_test_calcom_0123456789"


class AppClient(httpx.AsyncClient):
    """An httpx client of one in-process app, which the test may also reach into."""

    def __init__(self, app: FastAPI) -> None:
        super().__init__(transport=httpx.ASGITransport(app=app), base_url="http://webhooks.test")
        self.app = app


@asynccontextmanager
async def webhooks_client(settings: Settings) -> AsyncIterator[AppClient]:
    """A webhooks app of its own (lifespan run) with a platform Retell key, behind httpx."""
    from services.webhooks.app import create

    app = create(settings.model_copy(update={"retell_api_key": PLATFORM_RETELL_KEY}))
    async with app.router.lifespan_context(app), AppClient(app) as client:
        yield client


def calcom_signature(raw: bytes, secret: str = CALCOM_SECRET) -> str:
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def calcom_headers(raw: bytes, secret: str = CALCOM_SECRET) -> dict[str, str]:
    return {
        "X-Cal-Signature-256": calcom_signature(raw, secret),
        "Content-Type": "application/json",
    }


async def set_calcom_secret(db: Database, company_id: str, secret: str | None) -> None:
    async with db.transaction(SYSTEM) as session:
        await session.execute(
            sa.update(Company).where(Company.id == company_id).values(calcom_webhook_secret=secret)
        )


async def events_of(db: Database, company_id: str | None, source: str) -> list[WebhookEvent]:
    """The stored events of a company (or the unattributed ones), oldest first."""
    condition = (
        WebhookEvent.company_id.is_(None)
        if company_id is None
        else WebhookEvent.company_id == company_id
    )
    async with db.transaction(SYSTEM, write=False) as session:
        rows = await session.scalars(
            sa.select(WebhookEvent)
            .where(condition, WebhookEvent.source == source)
            .order_by(WebhookEvent.created_at, WebhookEvent.id)
        )
        return list(rows)


async def queued_job(redis: Redis, event_id: str) -> tuple[str, tuple[Any, ...]] | None:
    """(function, args) of the event's job when it is queued in `arq:queue:webhooks`."""
    jid = job_id(event_id)
    if await redis.zscore(WEBHOOKS_QUEUE, jid) is None:
        return None
    data = await redis.get(f"arq:job:{jid}")
    if data is None:
        return None
    job = deserialize_job(data)
    return job.function, tuple(job.args)


def load_json(*parts: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(CONTRACTS.joinpath(*parts).read_text())
    return data
