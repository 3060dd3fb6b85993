"""The lean ingestion handlers (services/webhooks/ingest/lean_routes.py) answer as the FastAPI
routes: the same status and body for first deliveries, repeats and refusals; bodies over the
lean limit go to the routes whole (and are stored whole); deliveries are counted under the route
template.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from services.webhooks.ingest.service import MAX_BODY
from shared.config import Settings
from shared.db.engine import Database
from shared.web.lean import MAX_LEAN_BODY
from tests.support.factories import create_tenant
from tests.webhooks import CALCOM_SECRET, AppClient, calcom_headers, events_of, set_calcom_secret
from tests.webhooks.test_ingest_calcom import body_with


@pytest.fixture
async def full(settings: Settings) -> AsyncIterator[AppClient]:
    from services.webhooks.app import create

    app = create(settings.model_copy(update={"lean_routes": False}))
    async with app.router.lifespan_context(app), AppClient(app) as client:
        yield client


@pytest.fixture
async def company(db: Database) -> str:
    tenant = await create_tenant(db)
    await set_calcom_secret(db, tenant.company_id, CALCOM_SECRET)
    return tenant.company_id


def _received(route: str) -> float:
    labels = {"service": "webhooks", "route": route, "method": "POST", "status": "202"}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


async def test_lean_and_full_answer_alike(
    client: AppClient, full: AppClient, db: Database, company: str
) -> None:
    route = "/v1/webhooks/calcom/{company_id}"
    path = f"/v1/webhooks/calcom/{company}"
    for name, first, second in (("lean first", client, full), ("full first", full, client)):
        raw = json.dumps(body_with(f"uid-lean-{name[:4]}")).encode()
        before = _received(route)
        accepted = await first.post(path, content=raw, headers=calcom_headers(raw))
        repeated = await second.post(path, content=raw, headers=calcom_headers(raw))
        assert accepted.status_code == 202, accepted.text
        assert _received(route) == before + 1
        event_id = accepted.json()["event_id"]
        assert repeated.status_code == 200
        assert repeated.json() == {"status": "in_progress", "event_id": event_id}
        assert accepted.json()["status"] == "accepted"

    raw = json.dumps(body_with("uid-lean-refusals")).encode()
    flipped = bytes([raw[0] ^ 1]) + raw[1:]
    refusals = [
        (path, flipped, calcom_headers(raw)),
        (path, raw, {}),
        (path, b"not json", calcom_headers(b"not json")),
        (path, b"[]", calcom_headers(b"[]")),
        ("/v1/webhooks/calcom/no-such-company", raw, calcom_headers(raw)),
        ("/v1/webhooks/calcom/" + "x" * 40, raw, calcom_headers(raw)),
        ("/v1/webhooks/calcom/", raw, calcom_headers(raw)),
        ("/v1/webhooks/calcom/a/b", raw, calcom_headers(raw)),
        ("/v1/webhooks/retell", raw, {"X-Retell-Signature": "v=1,d=00"}),
    ]
    for target, content, headers in refusals:
        lean = await client.post(target, content=content, headers=headers)
        plain = await full.post(target, content=content, headers=headers)
        assert (lean.status_code, lean.json()) == (plain.status_code, plain.json()), target
        assert lean.status_code in (400, 401, 404, 405), (target, lean.text)
    assert len(await events_of(db, company, "calcom")) == 2  # the refusals stored nothing


async def test_a_body_over_the_lean_limit_is_stored_whole(
    client: AppClient, db: Database, company: str
) -> None:
    body = body_with("uid-lean-large")
    body["payload"]["description"] = "d" * (MAX_LEAN_BODY + 50_000)
    raw = json.dumps(body).encode()
    assert MAX_LEAN_BODY < len(raw) < MAX_BODY
    path = f"/v1/webhooks/calcom/{company}"
    accepted = await client.post(path, content=raw, headers=calcom_headers(raw))
    assert accepted.status_code == 202, accepted.text
    (event,) = [
        e for e in await events_of(db, company, "calcom") if e.id == accepted.json()["event_id"]
    ]
    assert event.payload == body
    too_large = b"x" * (MAX_BODY + 1)
    refused = await client.post(path, content=too_large, headers=calcom_headers(too_large))
    assert refused.status_code == 413
