"""One tenancy mechanism on every path (docs/adr/0010): every table with company data is
covered, Core and raw statements run only through `shared.db.scoped`, the nullable-company
tables show a tenant its own rows only, and a static scan keeps future code on the helper."""

from __future__ import annotations

import ast
import inspect
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase

from shared.db.engine import Database
from shared.db.scoped import scoped
from shared.db.tenancy import (
    PER_CALL,
    SYSTEM,
    covered_table_names,
    tenant_column,
    uncovered_tables,
)
from shared.errors import TenantNotSet
from shared.models import (
    ApiCallLog,
    ApiKey,
    Appointment,
    Base,
    Branch,
    Company,
    OutboxEvent,
    WebhookEvent,
)
from tests.support.factories import create_platform_key, create_tenant

ROOT = Path(__file__).resolve().parents[2]
_MAPPED = [mapper.class_ for mapper in Base.registry.mappers]


# --- coverage of the metadata ------------------------------------------------------------------


def test_every_table_with_company_data_is_covered() -> None:
    with_company = {
        table.name
        for table in Base.metadata.tables.values()
        if "company_id" in table.c or table.name == "companies"
    }
    assert uncovered_tables(Base.metadata, _MAPPED) == []
    assert covered_table_names() == with_company
    for name in (
        "companies",
        "api_keys",
        "webhook_events",
        "api_call_logs",
        "outbox_events",
        "idempotency_keys",
        "appointments",
    ):
        assert name in covered_table_names()
    assert tenant_column(Base.metadata.tables["companies"]).name == "id"
    assert "notification_event_mappings" not in covered_table_names()  # global event types


def test_the_coverage_check_names_a_table_with_company_data_left_uncovered() -> None:
    metadata = sa.MetaData()
    sa.Table(
        "leads",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("company_id", sa.String(36)),
    )
    sa.Table("countries", metadata, sa.Column("code", sa.String(2), primary_key=True))

    class Other(DeclarativeBase):
        pass

    class Note(Other):  # company data, mapped without the TenantScoped marker
        __tablename__ = "notes"
        id: Any = sa.Column(sa.String(36), primary_key=True)
        company_id: Any = sa.Column(sa.String(36), nullable=True)

    assert uncovered_tables(metadata, _MAPPED) == ["leads"]
    assert uncovered_tables(Other.metadata, [Note]) == ["notes"]


def test_a_transaction_has_no_default_scope() -> None:
    tenant = inspect.signature(Database.transaction).parameters["tenant"]
    assert tenant.default is inspect.Parameter.empty


# --- Core and raw statements -------------------------------------------------------------------


async def _two_companies_with_branches(db: Database) -> tuple[str, str, str, str]:
    ids: list[str] = []
    companies: list[str] = []
    for _ in range(2):
        tenant = await create_tenant(db)
        companies.append(tenant.company_id)
        async with db.transaction(tenant.company_id) as session:
            branch = Branch(name="Main", timezone="Europe/Berlin")
            session.add(branch)
            await session.flush()
            ids.append(branch.id)
    return companies[0], companies[1], ids[0], ids[1]


async def test_a_core_statement_without_the_helper_is_refused(db: Database) -> None:
    a, _b, _branch_a, _branch_b = await _two_companies_with_branches(db)
    refused = [
        sa.select(Appointment.__table__),
        sa.select(Branch.__table__.c.id),
        sa.update(Branch.__table__).values(city="Hacked"),
        sa.delete(Branch.__table__),
    ]
    for statement in refused:
        with pytest.raises(TenantNotSet, match="scoped"):
            async with db.transaction(a) as session:
                await session.execute(statement)
    # On the session's bare connection as well (the engine's guard).
    with pytest.raises(TenantNotSet, match="scoped"):
        async with db.transaction(a, write=False) as session:
            connection = await session.connection()
            await connection.execute(sa.select(Branch.__table__.c.id))


async def test_a_core_statement_through_the_helper_sees_only_its_tenant(db: Database) -> None:
    a, b, branch_a, branch_b = await _two_companies_with_branches(db)
    branches = Branch.__table__
    async with db.transaction(a) as session:
        rows = (await session.execute(scoped(sa.select(branches.c.id), a))).scalars().all()
        assert rows == [branch_a]
        changed = await session.execute(scoped(sa.update(branches).values(city="Hacked"), a))
        assert changed.rowcount == 1  # type: ignore[attr-defined]
        count = sa.select(sa.func.count()).select_from(Appointment.__table__)
        assert (await session.execute(scoped(count, a))).scalar() == 0
    async with db.transaction(SYSTEM, write=False) as session:
        cities = dict((await session.execute(sa.select(branches.c.id, branches.c.city))).all())
    assert (cities[branch_a], cities[branch_b]) == ("Hacked", None)
    # A statement scoped to one company never runs on another company's session.
    with pytest.raises(TenantNotSet):
        async with db.transaction(b, write=False) as session:
            await session.execute(scoped(sa.select(branches.c.id), a))


async def test_raw_pool_statements_need_the_helper_and_a_tenant(db: Database, backend: str) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite has no raw pool")
    assert db.raw is not None
    a, b, branch_a, branch_b = await _two_companies_with_branches(db)
    plain = sa.select(Branch.__table__.c.id)
    with pytest.raises(TenantNotSet):
        await db.raw.first(plain, {}, tenant=a)
    per_call = scoped(plain, PER_CALL)
    assert await db.raw.scalars(per_call, {}, tenant=a) == [branch_a]
    assert await db.raw.scalars(per_call, {}, tenant=b) == [branch_b]
    with pytest.raises(TenantNotSet):
        await db.raw.scalars(per_call, {}, tenant=SYSTEM)
    with pytest.raises(TenantNotSet):
        await db.raw.scalars(scoped(plain, SYSTEM), {}, tenant=a)
    everything = await db.raw.scalars(scoped(plain, SYSTEM), {}, tenant=SYSTEM)
    assert {branch_a, branch_b} <= set(everything)


# --- the tables whose company_id may be NULL ---------------------------------------------------


async def _seed_nullable_rows(db: Database, companies: list[str | None]) -> dict[str, list[str]]:
    """One row per company (None: a platform row) in each nullable-company table."""
    now = datetime.now(UTC)
    seeded: dict[str, list[str]] = {"webhook_events": [], "outbox_events": [], "api_call_logs": []}
    async with db.transaction(SYSTEM) as session:
        for company in companies:
            rows: list[Any] = [
                WebhookEvent(
                    company_id=company,
                    source="calcom",
                    event_id=f"evt-{now.timestamp()}-{company}",
                    event_type="BOOKING_CREATED",
                    payload={},
                ),
                OutboxEvent(
                    company_id=company,
                    queue="q",
                    job_name="j",
                    payload={},
                    available_at=now,
                ),
                ApiCallLog(
                    company_id=company,
                    service="calcom",
                    method="GET",
                    endpoint="/v2/bookings",
                    created_at=now,
                ),
            ]
            session.add_all(rows)
            await session.flush()
            for name, row in zip(seeded, rows, strict=True):
                seeded[name].append(row.id)
    return seeded


async def test_a_tenant_sees_only_its_own_rows_of_every_covered_table(db: Database) -> None:
    a = (await create_tenant(db)).company_id
    b = (await create_tenant(db)).company_id
    await create_platform_key(db)
    seeded = await _seed_nullable_rows(db, [a, b, None])
    models: dict[str, Any] = {
        "companies": Company,
        "api_keys": ApiKey,
        "webhook_events": WebhookEvent,
        "outbox_events": OutboxEvent,
        "api_call_logs": ApiCallLog,
    }
    for name, model in models.items():
        async with db.transaction(a, write=False) as session:
            rows = (await session.scalars(sa.select(model))).all()
            count = await session.scalar(sa.select(sa.func.count()).select_from(model))
        assert {row.company_id for row in rows} == {a}, name
        assert count == len(rows) == 1, name
        if name in seeded:
            assert rows[0].id == seeded[name][0]
        with pytest.raises(TenantNotSet):
            async with db.transaction(None, write=False) as session:
                await session.scalars(sa.select(model))
        async with db.transaction(SYSTEM, write=False) as session:
            everything = {row.company_id for row in (await session.scalars(sa.select(model)))}
        assert {a, b} <= everything, name
        if name != "companies":
            assert None in everything, name  # platform rows: the system scope only


# --- the rule, enforced on the source ----------------------------------------------------------

# Modules allowed to name the SYSTEM scope: crons, sweepers, seeding, CLI, auth lookups,
# ingestion, cross-company uniqueness checks. A new one is a reviewed change of this list.
SYSTEM_SCOPE_USERS = {
    "services/booking/admin/crud.py",
    "services/booking/admin/resources.py",
    "services/booking/callbacks/escalation.py",
    "services/booking/callbacks/metrics.py",
    "services/booking/jobs.py",
    "services/notifications/jobs.py",
    "services/notifications/reminders/service.py",
    "services/webhooks/events/api.py",
    "services/webhooks/ingest/service.py",
    "services/webhooks/jobs.py",
    "services/webhooks/calcom/reconciliation.py",
    "services/webhooks/events/replay.py",
    "services/webhooks/retention.py",
    "shared/security/api_keys.py",
    "shared/web/auth.py",
    "shared/integrations/calcom/call_log.py",
    "shared/jobs/outbox.py",  # re-enqueues every company's pending rows after a Redis outage
    "shared/integrations/retell/auth.py",
    "tools/cli.py",
    "tools/cli_keys.py",
    "tools/demo.py",
    "tools/key_store.py",
}
_RUNNERS = {"execute", "scalar", "scalars", "stream", "first"}
_CORE_ONLY = ("__table__", "text(")


def _sources() -> list[tuple[str, ast.Module, str]]:
    found = []
    for top in ("shared", "services", "tools"):
        for path in sorted((ROOT / top).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            text = path.read_text(encoding="utf-8")
            found.append((relative, ast.parse(text), text))
    return found


def violations(relative: str, tree: ast.Module, text: str) -> list[str]:
    """What in one module bypasses the tenancy helper (empty when nothing does)."""
    if relative.startswith("shared/db/"):
        return []
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value in (
            "skip_tenant_filter",
            "tenant_checked",
        ):
            found.append((node.lineno, f"execution option {node.value!r}"))
        if isinstance(node, ast.Name) and node.id in ("tenant_condition", "tenant_param"):
            found.append((node.lineno, node.id))
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        func = node.func
        owner = ast.unparse(func.value)
        tenant_given = any(keyword.arg == "tenant" for keyword in node.keywords)
        if owner.endswith(".raw") and func.attr in _RUNNERS and not tenant_given:
            found.append((node.lineno, "raw-pool call without tenant="))
        if func.attr == "connection" and owner.endswith("session"):
            found.append((node.lineno, "the session's bare connection"))
        if func.attr in _RUNNERS and node.args:
            first = ast.unparse(node.args[0])
            covered = any(name in first for name in covered_table_names())
            core = any(marker in first for marker in _CORE_ONLY)
            if core and (covered or "__table__" in first) and "scoped(" not in first:
                found.append((node.lineno, "Core statement outside scoped()"))
    if "SYSTEM" in text and relative not in SYSTEM_SCOPE_USERS:
        lines = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "SYSTEM"]
        found += [(min(lines), "SYSTEM scope outside the list")] if lines else []
    return [f"{relative}:{line}: {what}" for line, what in sorted(found)]


# snapshot_is_current reads the connection's dialect and options; it runs no statement.
_ALLOWED = {("shared/hierarchy/reads.py", "the session's bare connection")}


def test_no_statement_bypasses_the_tenancy_helper() -> None:
    found = [
        v
        for source in _sources()
        for v in violations(*source)
        if (v.split(":")[0], v.split(": ", 1)[1]) not in _ALLOWED
    ]
    assert found == []


def test_the_scan_reads_the_tooling_and_the_list_names_only_scanned_modules() -> None:
    scanned = {relative for relative, _, _ in _sources()}
    assert {"tools/cli.py", "tools/demo.py", "tools/runner.py"} <= scanned
    assert sorted(SYSTEM_SCOPE_USERS - scanned) == []  # a moved module leaves no stale entry


def test_the_scan_catches_each_kind_of_bypass() -> None:
    code = """
async def leak(session, db):
    await session.execute(select(Branch), execution_options={"skip_tenant_filter": True})
    await db.raw.first(STATEMENT, {})
    connection = await session.connection()
    await session.execute(sa.select(Appointment.__table__))
    await session.execute(sa.text("SELECT * FROM appointments"))
    async with db.transaction(SYSTEM) as session:
        pass
"""
    found = violations("services/booking/new_feature.py", ast.parse(code), code)
    assert [line.split(": ", 1)[1] for line in found] == [
        "execution option 'skip_tenant_filter'",
        "raw-pool call without tenant=",
        "the session's bare connection",
        "Core statement outside scoped()",
        "Core statement outside scoped()",
        "SYSTEM scope outside the list",
    ]
