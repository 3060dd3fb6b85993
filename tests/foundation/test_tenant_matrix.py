"""Guarantee 4 on every operation, generated from the four OpenAPI documents (issue 13, item 2).

Two companies A and B each get one of everything (tests/support/tenant_seed.py). For every
operation whose path takes an id, tenant B (its own admin key, and a platform admin key naming
B) is aimed at tenant A's id with a plausible body: the answer must be 404 (or 403) as
problem+json, and every table's rows (all columns) must be the same before and after. A's own
key on the same GET answers 2xx, which proves the id was real. A new endpoint joins the matrix
by itself; the only explicit table says where a real id of A comes from for each parameter
name, and an operation whose id has no known source fails with a message saying what to add.
Every list B reads (id filters set to A's ids) shows none of A's ids. The Cal.com webhook path
is signed per company: B's secret on A's path is 401 and stores nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.config import Settings
from shared.db.engine import Database
from tests.conftest import Services
from tests.support.db_snapshot import (
    Snapshot,
    company_snapshot,
    differences,
    snapshot,
    snapshot_engine,
)
from tests.support.factories import create_platform_key
from tests.support.fuzz import NOT_JSON_APIS, problem_violation
from tests.support.openapi_ops import BodyBuilder, Operation, is_id, operations
from tests.support.tenant_seed import (
    CLOSED_DAY,
    LEVELS,
    NOTIFICATION_CONFIG,
    NOTIFICATION_EVENT,
    POLICY_CONFIGS,
    TEMPLATE,
    Seeded,
    calcom_delivery,
    calcom_headers,
    platform_key,
    seed_company,
)

# Where a real id of tenant A comes from (keys of `Seeded.ids`), by path parameter name...
ID_PARAMS = {
    "appointment_id": "appointment",
    "callback_id": "callback",
    "event_id": "webhook_event",
    "customer_id": "customer",
    "company_id": "company",
    "branch_id": "branch",
    "service_id": "service",
    "staff_id": "staff",
    "delivery_id": "delivery",
    "call_id": "call",
}
# ... by the collection a plain `{id}` follows (`/v1/admin/staff/{id}`) ...
COLLECTIONS = {
    **{name: name for name in ("branches", "services", "staff", "staff-services")},
    **{name: name for name in ("working-hours", "time-off", "phone-numbers", "api-keys")},
    "customers": "customers",
    "appointments": "appointment",
    "callbacks": "callback",
    "events": "webhook_event",
    "deliveries": "delivery",
    "platform-keys": "platform-keys",
}
# ... and, for `{entity_id}`, by the config level before it (the company itself at the top).
# Other path parameters take their schema's enum, else the value A's seed used.
FIXED = {
    "event_type": NOTIFICATION_EVENT[0],
    "channel": NOTIFICATION_EVENT[1],
    "language": TEMPLATE[2],
    "day": CLOSED_DAY,
}
# Platform resources belong to no company: a company key must get 403, and only a company key
# is tried (a platform admin may manage them).
PLATFORM_COLLECTIONS = {"platform-keys"}
# A config level's body depends on the level (a staff member's level may hold only a few keys):
# these take the body A's seed used at that level instead of the schema's example.
LEVEL_BODIES: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {
    ("policy", "PUT", "/v1/policies/{level}/{entity_id}/{policy_type}"): POLICY_CONFIGS,
    (
        "notifications",
        "PUT",
        "/v1/notification-configs/{level}/{entity_id}/{event_type}/{channel}",
    ): {level: NOTIFICATION_CONFIG for level in LEVELS},
}
# Paths that authenticate by a per-company signature instead of a key: checked below.
SIGNED = {("webhooks", "POST", "/v1/webhooks/calcom/{company_id}")}
ACTORS = ("key", "platform")


def _documents() -> dict[str, dict[str, Any]]:
    """The four OpenAPI documents, from apps built (never started) with throwaway settings."""
    settings = Settings(
        environment="test",
        database_url="sqlite+aiosqlite://",
        service_api_key="collect-only",
        log_json=False,
        log_level="WARNING",
    )
    return {name: app.openapi() for name, app in Services(settings).apps.items()}


DOCUMENTS = _documents()
ALL = [op for name, doc in DOCUMENTS.items() for op in operations(name, doc)]
WITH_ID = [op for op in ALL if any(is_id(p) for p in op.path_params)]


@dataclass(frozen=True)
class Case:
    service: str
    method: str
    path: str
    level: str | None
    actor: str

    def __str__(self) -> str:
        level = f"[{self.level}]" if self.level else ""
        return f"{self.actor}:{self.service}:{self.method} {self.path}{level}"


def levels(op: Operation) -> list[str | None]:
    if "level" not in op.path_params:
        return [None]
    return list(op.param_schema("level").get("enum", LEVELS))


def actors(op: Operation) -> tuple[str, ...]:
    platform = any(segment in PLATFORM_COLLECTIONS for segment in op.path.split("/"))
    return ("key",) if platform else ACTORS


def _cases() -> list[Case]:
    keyed = [op for op in WITH_ID if (op.service, op.method, op.path) not in SIGNED]
    keyed.sort(key=lambda op: op.method == "DELETE")  # deletions last
    return [
        Case(op.service, op.method, op.path, level, actor)
        for op in keyed
        for level in levels(op)
        for actor in actors(op)
    ]


CASES = _cases()
# Reads without an id in the path (lists, filters, overviews): B's answer shows none of A's ids.
LISTS = [
    op
    for op in ALL
    if op.method == "GET"
    and op.secured
    and not any(is_id(p) for p in op.path_params)
    and not op.path.startswith(NOT_JSON_APIS)
]
LIST_CASES = [Case(op.service, op.method, op.path, None, actor) for op in LISTS for actor in ACTORS]


def provider(op: Operation, name: str, level: str | None) -> str:
    """The `Seeded.ids` key that holds a real id for path parameter `name` of `op`."""
    if name == "entity_id" and level is not None:
        found: str | None = level
    elif name == "id":
        segments = op.path.split("/")
        found = COLLECTIONS.get(segments[segments.index("{id}") - 1])
    else:
        found = ID_PARAMS.get(name)
    if found is None:
        raise LookupError(
            f"{op.label}: no source of a real id for path parameter {{{name}}}. Add it to "
            "ID_PARAMS or COLLECTIONS in tests/foundation/test_tenant_matrix.py and seed such "
            "a row in tests/support/tenant_seed.py (seed_company)."
        )
    return found


def fill_path(op: Operation, level: str | None, ids: dict[str, str]) -> str:
    values: dict[str, str] = {}
    for name in op.path_params:
        if is_id(name):
            values[name] = ids[provider(op, name, level)]
        elif name == "level" and level is not None:
            values[name] = level
        elif enum := op.param_schema(name).get("enum"):
            values[name] = str(enum[0])
        elif name in FIXED:
            values[name] = FIXED[name]
        else:
            raise LookupError(f"{op.label}: no value for path parameter {{{name}}}; add to FIXED")
    return op.path.format(**values)


def test_every_id_operation_has_an_id_source_and_every_signed_one_a_check() -> None:
    """A new endpoint with an id must be covered: this names what is missing."""
    fake = {key: key for key in [*ID_PARAMS.values(), *COLLECTIONS.values(), *LEVELS]}
    missing = []
    for op in WITH_ID:
        if not op.secured and (op.service, op.method, op.path) not in SIGNED:
            missing.append(f"{op.label}: no API key and no signed-path check in this module")
            continue
        for level in levels(op):
            try:
                fill_path(op, level, fake)
            except LookupError as error:
                missing.append(str(error))
    assert not missing, "\n".join(missing)
    # The matrix really is generated: the operations known when it was written are in it.
    labels = {f"{c.service}:{c.method} {c.path}" for c in CASES}
    assert "booking:DELETE /v1/admin/branches/{id}" in labels
    assert "webhooks:POST /v1/webhooks/events/{event_id}/replay" in labels
    assert len({(c.service, c.method, c.path) for c in CASES}) >= 40


@dataclass
class Matrix:
    a: Seeded
    b: Seeded
    platform_key: str
    engine: AsyncEngine
    tables: list[sa.Table]
    live: dict[tuple[str, str, str], Operation]

    async def snapshot(self) -> Snapshot:
        return await snapshot(self.engine, self.tables)

    def b_headers(self, actor: str) -> dict[str, str]:
        if actor == "platform":
            return {
                "Authorization": f"Bearer {self.platform_key}",
                "X-Company-ID": self.b.company_id,
            }
        return self.b.headers


@pytest.fixture(scope="module")
async def matrix(services: Services, db: Database, database_url: str) -> AsyncIterator[Matrix]:
    a = await seed_company(services, db)
    b = await seed_company(services, db)
    platform = await create_platform_key(db, scopes=["admin"])
    a.ids["platform-keys"], _ = await platform_key(db, ["operator"])
    live = {
        (op.service, op.method, op.path): op
        for name, app in services.apps.items()
        for op in operations(name, app.openapi())
    }
    async with snapshot_engine(database_url) as (engine, tables):
        yield Matrix(a, b, platform, engine, tables, live)


async def test_tenant_a_owns_a_row_in_every_table_of_company_data(matrix: Matrix) -> None:
    """ "One of everything": B's requests meet real rows of A wherever company data lives."""
    rows = await company_snapshot(matrix.engine, matrix.tables, matrix.a.company_id)
    empty = sorted(name for name, found in rows.items() if not found)
    assert empty == [], f"seed a row of these tables in tests/support/tenant_seed.py: {empty}"


def assert_refusal(response: httpx.Response, allowed: tuple[int, ...], what: str) -> None:
    __tracebackhide__ = True
    assert response.status_code in allowed, (
        f"{what}: answered {response.status_code}, wanted one of {allowed}: {response.text[:600]}"
    )
    assert response.headers["content-type"].startswith("application/problem+json"), what
    assert problem_violation(response) is None, f"{what}: {problem_violation(response)}"


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_tenant_b_on_tenant_a_ids_is_404_and_changes_nothing(
    case: Case, services: Services, matrix: Matrix
) -> None:
    op = matrix.live.get((case.service, case.method, case.path))
    assert op is not None, f"{case}: not in the running app's schema"
    url = fill_path(op, case.level, matrix.a.ids)
    body = BodyBuilder(op.components, matrix.b.ids).body(op)
    if case.level is not None and (key := (case.service, case.method, case.path)) in LEVEL_BODIES:
        body = LEVEL_BODIES[key][case.level]
    client = services.clients[op.service]
    what = f"{case} as B on {url} with body {body!r}"

    before = await matrix.snapshot()
    response = await client.request(op.method, url, headers=matrix.b_headers(case.actor), json=body)
    after = await matrix.snapshot()

    assert_refusal(response, (403, 404), what)
    assert differences(before, after) == [], what
    if op.method == "GET":
        own = await client.get(url, headers=matrix.a.headers)
        assert 200 <= own.status_code < 300, f"{case}: A's own key on {url}: {own.text[:400]}"


async def test_calcom_webhook_signed_by_b_on_a_path_is_401_and_stores_nothing(
    services: Services, matrix: Matrix
) -> None:
    webhooks = services.clients["webhooks"]
    raw = calcom_delivery(f"mx{uuid.uuid4().hex[:20]}")
    a_path = f"/v1/webhooks/calcom/{matrix.a.company_id}"

    before = await matrix.snapshot()
    forged = await webhooks.post(
        a_path, content=raw, headers=calcom_headers(raw, matrix.b.calcom_secret)
    )
    wrong_path = await webhooks.post(
        f"/v1/webhooks/calcom/{matrix.b.company_id}",
        content=raw,
        headers=calcom_headers(raw, matrix.a.calcom_secret),
    )
    after = await matrix.snapshot()

    assert_refusal(forged, (401,), "B's secret on A's Cal.com path")
    assert_refusal(wrong_path, (401,), "A's secret on B's Cal.com path")
    assert differences(before, after) == []
    # The same bytes signed by A on A's path are accepted: only the secret was wrong above.
    genuine = await webhooks.post(
        a_path, content=raw, headers=calcom_headers(raw, matrix.a.calcom_secret)
    )
    assert genuine.status_code == 202, genuine.text
    assert genuine.json()["status"] == "accepted"


def list_queries(op: Operation, a_ids: dict[str, str]) -> list[dict[str, str]]:
    """The required parameters (an id among them: A's), then also every id filter set to A's."""
    builder = BodyBuilder(op.components, a_ids)
    required: dict[str, str] = {}
    probes: dict[str, str] = {}
    for name, needed, schema in op.query_params():
        if is_id(name):
            source = "branch" if name == "entity_id" else ID_PARAMS.get(name)
            if source is not None:
                (required if needed else probes)[name] = a_ids[source]
        elif needed:
            value = FIXED.get(name, builder.sample(schema, name))
            required[name] = str(value).lower() if isinstance(value, bool) else str(value)
    if "entity_id" in probes:
        probes["level"] = "branch"
    return [required, {**required, **probes}] if probes else [required]


def a_ids_in(matrix: Matrix, text: str) -> list[str]:
    foreign = {key: value for key, value in matrix.a.ids.items() if key != "platform-keys"}
    return sorted(key for key, value in foreign.items() if value in text)


@pytest.mark.parametrize("case", LIST_CASES, ids=str)
async def test_what_b_reads_without_an_id_shows_nothing_of_a(
    case: Case, services: Services, matrix: Matrix
) -> None:
    op = matrix.live.get((case.service, case.method, case.path))
    assert op is not None, f"{case}: not in the running app's schema"
    url = fill_path(op, None, matrix.a.ids)
    client = services.clients[op.service]
    for params in list_queries(op, matrix.a.ids):
        what = f"{case} as B with {params}"
        before = await matrix.snapshot()
        response = await client.get(url, params=params, headers=matrix.b_headers(case.actor))
        after = await matrix.snapshot()
        assert differences(before, after) == [], what
        if response.status_code < 300:
            assert a_ids_in(matrix, response.text) == [], f"{what}: {response.text[:600]}"
        else:
            assert_refusal(response, (403, 404, 422), what)


async def test_the_read_probe_is_not_vacuous(services: Services, matrix: Matrix) -> None:
    """The same reads with A's own key show A's ids, so their absence for B means something."""
    seen = set()
    for op in LISTS:
        url = fill_path(op, None, matrix.a.ids)
        for params in list_queries(op, matrix.a.ids):
            response = await services.clients[op.service].get(
                url, params=params, headers=matrix.a.headers
            )
            if response.status_code < 300 and a_ids_in(matrix, response.text):
                seen.add(op.label)
    assert len(seen) >= 12, sorted(seen)
