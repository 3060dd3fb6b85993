"""The guides in docs/ are true of the code: every worked fee example of
docs/policy-configuration.md runs through the real policy service (in-process, both backends)
and answers exactly what the page says; the API guide's problem-code tables list exactly the
codes the code has."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

import services
import shared
import shared.errors
from shared.db.engine import Database
from shared.errors import AppError
from shared.models import AppointmentModification, Customer
from shared.web.problems import _HTTP_CODES
from tests.conftest import Services
from tests.policy.test_policy_api import book, next_start
from tests.support.factories import Salon, create_salon

DOCS = Path(__file__).resolve().parents[2] / "docs"
POLICY_GUIDE = DOCS / "policy-configuration.md"
API_GUIDE = DOCS / "api-guide.md"
# <!-- guide-example: NAME ROLE [ARGS] --> followed by a fenced ```json block.
BLOCK = re.compile(r"<!-- guide-example: (\S+) (\S+)(?: ([^\n]*?))? -->\s*```json\n(.*?)```", re.S)
# Codes the web frame answers itself (shared/web/problems.py, shared/web/health.py).
FRAME_CODES = {
    *_HTTP_CODES.values(),
    "http_error",
    "internal_error",
    "client_disconnected",
    "not_ready",
}


@dataclass
class Example:
    name: str
    configs: list[tuple[str, Any]] = field(default_factory=list)  # (level, config JSON)
    prior: dict[str, Any] | None = None  # earlier cancellations of one customer
    request: tuple[str, str, Any] | None = None  # (method, path, body)
    answer: tuple[int, Any] | None = None  # (status, body)


def examples() -> list[Example]:
    """The worked examples of the policy guide, by name, in page order."""
    found: dict[str, Example] = {}
    for name, role, args, body in BLOCK.findall(POLICY_GUIDE.read_text(encoding="utf-8")):
        example = found.setdefault(name, Example(name))
        data = json.loads(body)
        words = (args or "").split()
        if role == "config":
            example.configs.append((words[0], data))
        elif role == "prior-cancellations":
            example.prior = data
        elif role == "request":
            example.request = (words[0], words[1], data)
        elif role == "answer":
            example.answer = (int(words[0]), data)
        else:
            raise AssertionError(f"{name}: unknown role {role!r}")
    return list(found.values())


EXAMPLES = examples()


def fill(value: Any, ids: dict[str, str]) -> Any:
    """`value` with every <placeholder> of `ids` replaced by the salon's id."""
    if isinstance(value, str):
        for key, real in ids.items():
            value = value.replace(f"<{key}>", real)
        return value
    if isinstance(value, list):
        return [fill(item, ids) for item in value]
    if isinstance(value, dict):
        return {key: fill(item, ids) for key, item in value.items()}
    return value


def salon_ids(salon: Salon) -> dict[str, str]:
    return {
        "company_id": salon.tenant.company_id,
        "branch_id": salon.branch_id,
        "service_id": salon.service_id,
        "staff_id": salon.staff_ids[0],
    }


async def record_cancellations(
    booking: httpx.AsyncClient, db: Database, salon: Salon, prior: dict[str, Any]
) -> None:
    """Book and cancel one appointment per documented instant, then date each cancellation
    at its instant (the quota counts the customer's cancellations by when they were made)."""
    instants = [datetime.fromisoformat(text) for text in prior["created_at"]]
    for hour, _ in enumerate(instants, start=10):
        booked = await book(booking, salon, next_start(hour=hour))
        cancelled = await booking.post(
            f"/v1/appointments/{booked['id']}/cancel", json={}, headers=salon.headers
        )
        assert cancelled.status_code == 200, cancelled.text
    async with db.transaction(salon.tenant.company_id) as session:
        customer = await session.scalar(
            select(Customer.id).where(Customer.phone == prior["customer_phone"])
        )
        assert customer is not None
        rows = list(
            await session.scalars(
                select(AppointmentModification.id)
                .where(AppointmentModification.customer_id == customer)
                .order_by(AppointmentModification.created_at)
            )
        )
        assert len(rows) == len(instants)
        for row, instant in zip(rows, instants, strict=True):
            await session.execute(
                update(AppointmentModification)
                .where(AppointmentModification.id == row)
                .values(created_at=instant)
            )


def test_the_guide_has_the_promised_examples() -> None:
    names = {example.name for example in EXAMPLES}
    assert len(EXAMPLES) >= 5
    assert {"free-before-deadline", "flat-late-fee", "tiered-3h", "quota-refusal"} <= names
    assert {"staff-override", "staff-business-key"} <= names
    for example in EXAMPLES:
        assert example.request is not None, f"{example.name} has no request block"
        assert example.answer is not None, f"{example.name} has no answer block"


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.name for example in EXAMPLES])
async def test_worked_example_answers_as_documented(
    services: Services, db: Database, example: Example
) -> None:
    policy, booking = services.clients["policy"], services.clients["booking"]
    salon = await create_salon(db)
    ids = salon_ids(salon)
    if example.prior is not None:
        await record_cancellations(booking, db, salon, example.prior)
    entity = {"company": "company_id", "branch": "branch_id", "service": "service_id"}
    for level, config in example.configs:
        entity_id = ids[entity.get(level, "staff_id")]
        stored = await policy.put(
            f"/v1/policies/{level}/{entity_id}/cancellation", json=config, headers=salon.headers
        )
        assert stored.status_code == 201, stored.text
    assert example.request is not None and example.answer is not None
    method, path, body = example.request
    kwargs: dict[str, Any] = {} if body is None else {"json": fill(body, ids)}
    response = await policy.request(method, fill(path, ids), headers=salon.headers, **kwargs)
    status, expected = example.answer
    assert response.status_code == status, response.text
    assert response.json() == fill(expected, ids)
    if status >= 400 and method == "PUT":  # a refusal stores nothing
        stored_after = await policy.get(fill(path, ids), headers=salon.headers)
        assert stored_after.status_code == 404


def table_codes(marker: str) -> set[str]:
    """The codes (first column, in backticks) of the table after `<!-- guide-table: marker -->`."""
    text = API_GUIDE.read_text(encoding="utf-8")
    start = text.index(f"<!-- guide-table: {marker} -->")
    codes: set[str] = set()
    for line in text[start:].splitlines()[1:]:
        if not line.strip():
            if codes:
                break
            continue
        cell = line.split("|")[1].strip() if line.startswith("|") else ""
        if cell.startswith("`"):
            codes.add(cell.strip("`"))
    return codes


def error_classes() -> set[type[AppError]]:
    """Every AppError subclass of shared/ and services/ (each module imported once)."""
    for package in (shared, services):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            importlib.import_module(module.name)
    return subclasses(AppError)


def subclasses(cls: type[AppError]) -> set[type[AppError]]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= subclasses(sub)
    return found


def test_problem_code_table_matches_shared_errors() -> None:
    in_errors = {AppError.code} | {
        cls.code for cls in error_classes() if cls.__module__ == shared.errors.__name__
    }
    assert table_codes("problem-codes") == in_errors


def test_other_codes_table_matches_the_frame_and_the_services() -> None:
    classes = error_classes()
    in_errors = {AppError.code} | {
        cls.code for cls in classes if cls.__module__ == shared.errors.__name__
    }
    elsewhere = {cls.code for cls in classes if cls.__module__ != shared.errors.__name__}
    assert table_codes("other-codes") == (elsewhere | FRAME_CODES) - in_errors
