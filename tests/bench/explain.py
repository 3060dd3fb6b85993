"""The MariaDB plans of the statements one availability request runs (docs/perf/).

The booking app runs in this process (as in `statements.py`); one warm-up request, then the
statements of one GET /v1/availability are captured as the driver receives them (SQL text
and parameters, from a `before_cursor_execute` listener, and from the raw pool when a route
uses it) and each SELECT is sent again as EXPLAIN and EXPLAIN FORMAT=JSON with its own
parameters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from services.booking.app import create as create_booking
from shared.config import Settings
from shared.db.scoped import check_raw
from tests.support.servers import ROOT

OUTPUT = ROOT / "docs" / "perf" / "explain-availability.txt"
SHORT_JSON = 6000  # characters: longer JSON plans are left out
JSON_HEAD, JSON_TAIL = "EXPLAIN FORMAT=JSON:\n", "\n(end of JSON)"
_UUID = r"'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'"
_ID_LIST = re.compile(rf"{_UUID}(?:,\s*{_UUID}){{3,}}")


def abbreviated(text: str) -> str:
    """Long lists of quoted ids (the staff of the branch) shortened to the first and a count."""

    def short(found: re.Match[str]) -> str:
        ids = re.findall(_UUID, found[0])
        return f"{ids[0]}, ... ({len(ids)} ids)"

    return _ID_LIST.sub(short, text)


@contextmanager
def capturing(engine: Engine, raw: Any) -> Iterator[list[tuple[str, Any]]]:
    """(statement, driver parameters) of everything sent meanwhile, in order."""
    seen: list[tuple[str, Any]] = []

    def on_statement(_c: Any, _cur: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        seen.append((statement, parameters))

    original = None
    if raw is not None:  # the raw pool (shared/db/raw_sql.py) bypasses the engine's events
        original = raw._run

        async def run(statement: Any, params: Mapping[str, Any], tenant: str) -> Any:
            query = raw.compiled(statement)
            seen.append((query.sql, query.arguments(check_raw(statement, params, tenant))))
            return await original(statement, params, tenant)

        raw._run = run
    event.listen(engine, "before_cursor_execute", on_statement)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_statement)
        if raw is not None:
            raw._run = original


def _table(columns: list[str], rows: list[tuple[Any, ...]]) -> str:
    cells = [columns, *[["NULL" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([lines[0], "-+-".join("-" * w for w in widths), *lines[1:]])


async def _explain(engine: AsyncEngine, statement: str, parameters: Any) -> tuple[str, str]:
    """The tabular EXPLAIN and the JSON one of a statement with its parameters."""
    async with engine.connect() as conn:
        result = await conn.exec_driver_sql("EXPLAIN " + statement, parameters)
        plan = _table(list(result.keys()), [tuple(row) for row in result.all()])
        raw_json = await conn.exec_driver_sql("EXPLAIN FORMAT=JSON " + statement, parameters)
        text = str(raw_json.scalar_one())
    with suppress(ValueError):  # MariaDB answers JSON; pretty-print it when it parses
        text = json.dumps(json.loads(text), indent=1)
    return plan, text


def _inline(statement: str, parameters: Any) -> str:
    """The statement with its parameters written in (for reading only)."""
    flat = " ".join(statement.split())
    if isinstance(parameters, list | tuple):
        for value in parameters:
            shown = repr(value.isoformat(sep=" ") if isinstance(value, datetime) else value)
            flat = flat.replace("%s", shown, 1)
    return flat


async def availability_plans(
    settings: Settings, headers: Mapping[str, str], params: Mapping[str, Any], label: str
) -> str:
    """EXPLAIN of each SELECT of one GET /v1/availability; written to OUTPUT and returned."""
    app = create_booking(settings)
    async with app.router.lifespan_context(app):
        db = app.state.db
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://booking.bench") as c:
            warm = await c.get("/v1/availability", params=dict(params), headers=dict(headers))
            if warm.status_code != 200:
                raise RuntimeError(f"availability failed: {warm.status_code} {warm.text[:300]}")
            with capturing(db.engine.sync_engine, db.raw) as seen:
                answer = await c.get("/v1/availability", params=dict(params), headers=dict(headers))
            slots = len(answer.json()["slots"])
        parts = [
            f"EXPLAIN of the statements of one GET /v1/availability ({label}).",
            f"Written by `make bench` (BENCH_ONLY=scaling) on {datetime.now(UTC):%Y-%m-%d %H:%M} "
            f"UTC; query {dict(params)}; answer: {slots} slots; {len(seen)} statements.",
        ]
        for n, (statement, parameters) in enumerate(seen, 1):
            parts.append(f"\n-- statement {n}: {abbreviated(_inline(statement, parameters))}")
            if not statement.lstrip().upper().startswith(("SELECT", "(SELECT", "WITH")):
                parts.append("(not a SELECT: no plan)")
                continue
            plan, plan_json = await _explain(db.engine, statement, parameters)
            parts.append(abbreviated(plan))
            plan_json = abbreviated(plan_json)
            if len(plan_json) <= SHORT_JSON:
                parts.append(JSON_HEAD + plan_json + JSON_TAIL)
            else:
                parts.append(f"(EXPLAIN FORMAT=JSON: {len(plan_json)} characters, left out)")
    text = "\n".join(parts) + "\n"
    Path(OUTPUT).parent.mkdir(parents=True, exist_ok=True)
    Path(OUTPUT).write_text(text.replace(JSON_TAIL, ""), encoding="utf-8")
    return text


def without_json(text: str) -> str:
    """`availability_plans`' text without the JSON plans (for the terminal)."""
    return re.sub(re.escape(JSON_HEAD) + ".*?" + re.escape(JSON_TAIL), "", text, flags=re.DOTALL)
