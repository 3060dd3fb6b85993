"""Correlation ids, masked JSON logs and problem+json errors."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from shared.observability.logging import JsonFormatter, correlation_id_var, mask


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("call from +491701234567 ok", "call from +**********67 ok"),
        ("mail anna.schmidt@example.de now", "mail a***@example.de now"),
        ("tel 030 1234 5678", "tel *********78"),
        ("date 2026-11-24 stays", "date 2026-11-24 stays"),
        ("booked 3 slots at 14:30", "booked 3 slots at 14:30"),
        ("id 9f72862b-1944-4e11-bd03-bfc812706de7", "id 9f72862b-1944-4e11-bd03-bfc812706de7"),
    ],
)
def test_mask(raw: str, masked: str) -> None:
    assert mask(raw) == masked


def test_json_log_line_has_correlation_id_and_masks_extras() -> None:
    record = logging.makeLogRecord(
        {
            "name": "booking",
            "levelname": "INFO",
            "levelno": 20,
            "msg": "customer %s booked",
            "args": ("+491701234567",),
            "customer": {"email": "max@example.com", "phone": "+4930123456"},
        }
    )
    token = correlation_id_var.set("call_abc123")
    try:
        line = json.loads(JsonFormatter("booking").format(record))
    finally:
        correlation_id_var.reset(token)
    assert line["correlation_id"] == "call_abc123"
    assert line["message"] == "customer +**********67 booked"
    assert line["customer"] == {"email": "m***@example.com", "phone": "+********56"}
    assert line["service"] == "booking"
    assert line["level"] == "info"


async def test_correlation_id_is_echoed_or_generated(booking: httpx.AsyncClient) -> None:
    given = await booking.get("/health/live", headers={"X-Correlation-ID": "call_42"})
    assert given.headers["x-correlation-id"] == "call_42"
    generated = await booking.get("/health/live")
    assert len(generated.headers["x-correlation-id"]) == 36
    hostile = await booking.get("/health/live", headers={"X-Correlation-ID": "a b\tc<script>"})
    assert hostile.headers["x-correlation-id"] != "a b\tc<script>"


async def test_unknown_route_is_problem_json(booking: httpx.AsyncClient) -> None:
    response = await booking.get("/v1/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "not_found"
    assert body["status"] == 404
    assert {"type", "title", "detail"} <= set(body)


async def test_docs_declare_the_api_key_scheme(booking: httpx.AsyncClient) -> None:
    spec = (await booking.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert any(s.get("scheme") == "bearer" for s in schemes.values())
    assert (await booking.get("/docs")).status_code == 200
