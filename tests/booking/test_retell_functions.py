"""The Retell integration you can paste (issue 16, item 4; docs/adr/0022).

`GET /v1/retell/functions` lists every agent function in Retell's custom-function format; the
same content is docs/retell-functions.json; each definition is valid JSON Schema and a call
generated from its required properties succeeds; an unknown function is a 404 that changes
nothing; an unregistered number and a bad signature are told apart, and each is logged.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from sqlalchemy import func, select

from services.booking.agent.definitions import SPECS, parameters, request_body
from services.booking.agent.functions import FUNCTIONS
from shared.db.engine import Database
from shared.models import Appointment, CallbackRequest, IdempotencyKey
from tests.booking.agent_support import CALLER, RETELL_KEY, call_function, enable_retell, signed
from tests.conftest import Services
from tests.support.factories import Salon, create_salon, create_tenant, next_weekday

DOCS_FILE = Path(__file__).resolve().parents[2] / "docs" / "retell-functions.json"
LOCAL = "http://127.0.0.1:8001"
ANSWERED = {
    "check_availability": "available",
    "book_appointment": "booked",
    "cancel_appointment": "cancelled",
    "reschedule_appointment": "rescheduled",
    "list_appointments": "ok",
    "request_callback": "created",
}


async def _salon(db: Database) -> Salon:
    salon = await create_salon(db)
    await enable_retell(db, salon)
    return salon


async def _count(db: Database, salon: Salon, model: type) -> int:
    async with db.transaction(salon.tenant.company_id, write=False) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def _client(services: Services, base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=services.apps["booking"]), base_url=base_url
    )


async def test_the_definitions_are_the_docs_file_for_the_local_base_url(
    services: Services, db: Database
) -> None:
    salon = await _salon(db)
    async with _client(services, LOCAL) as client:
        answer = await client.get("/v1/retell/functions", headers=salon.tenant.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == json.loads(DOCS_FILE.read_text(encoding="utf-8"))
    assert [item["name"] for item in answer.json()["items"]] == list(FUNCTIONS)


async def test_the_url_follows_the_deployment_and_a_read_scope_is_needed(
    services: Services, db: Database
) -> None:
    operator = await create_tenant(db, scopes=["operator"])
    agent_only = await create_tenant(db, scopes=["agent"])
    async with _client(services, "https://booking.example.com") as client:
        read = await client.get("/v1/retell/functions", headers=operator.headers)
        refused = await client.get("/v1/retell/functions", headers=agent_only.headers)
        anonymous = await client.get("/v1/retell/functions")
    assert read.status_code == 200, read.text
    assert read.json()["items"][1]["url"] == (
        "https://booking.example.com/v1/retell/functions/book_appointment"
    )
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "unauthorized")


def test_each_definition_is_retells_format_with_a_valid_json_schema() -> None:
    items = json.loads(DOCS_FILE.read_text(encoding="utf-8"))["items"]
    for item in items:
        assert set(item) >= {"type", "name", "description", "url", "parameters", "timeout_ms"}
        assert (item["type"], item["method"]) == ("custom", "POST")
        assert item["url"] == f"{LOCAL}/v1/retell/functions/{item['name']}"
        assert 1_000 <= item["timeout_ms"] <= 600_000  # retell-sdk's bounds
        assert item["description"]
        schema = item["parameters"]
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object"
        model = SPECS[item["name"]].args
        assert set(schema["properties"]) == set(model.model_fields)
        assert set(schema["required"]) <= set(schema["properties"])
        assert all(
            p["type"] == "string" and p["description"] for p in schema["properties"].values()
        )
    assert {i["name"]: i["parameters"]["required"] for i in items} == {
        "check_availability": ["service", "date"],
        "book_appointment": ["service", "date", "time", "customer_name"],
        "cancel_appointment": ["date"],
        "reschedule_appointment": ["date", "new_date", "new_time"],
        "list_appointments": [],
        "request_callback": [],
    }


def test_the_openapi_document_has_each_functions_body_and_answers(services: Services) -> None:
    document = services.apps["booking"].openapi()
    operation = document["paths"]["/v1/retell/functions/{name}"]["post"]
    forms = operation["requestBody"]["content"]["application/json"]["schema"]["anyOf"]
    titles = [form["title"] for form in forms]
    for name, spec in SPECS.items():
        assert f"{name} ({spec.args.__name__})" in titles
        wrapped = next(f for f in forms if f["title"] == f"{name} ({spec.args.__name__})")
        assert wrapped["properties"]["args"] == parameters(spec.args)
        assert wrapped["properties"]["name"] == {"const": name}
    answers = operation["responses"]["200"]["content"]["application/json"]["schema"]["anyOf"]
    refs = {ref["$ref"].rsplit("/", 1)[1] for ref in answers}
    assert refs == {spec.answer.__name__ for spec in SPECS.values()} | {"RefusalAnswer"}
    assert refs <= set(document["components"]["schemas"])
    assert {"400", "401", "404"} <= set(operation["responses"])
    listing = document["paths"]["/v1/retell/functions"]["get"]
    assert listing["security"] and "200" in listing["responses"]


def _value(name: str, schema: dict[str, Any], day: date, new_day: date) -> str:
    """A value for a required property, from its schema (dates, times) or its meaning."""
    if schema.get("format") == "date":
        return (new_day if name.startswith("new_") else day).isoformat()
    if "HH:MM" in schema["description"]:
        return "11:00" if name.startswith("new_") else "10:00"
    spoken = {"service": "Herrenhaarschnitt", "customer_name": "Max Mustermann"}
    assert name in spoken, f"no sample value for required property {name!r}: add one here"
    return spoken[name]


@pytest.mark.parametrize("function", list(SPECS))
async def test_a_call_generated_from_the_required_properties_succeeds(
    booking: httpx.AsyncClient, db: Database, function: str
) -> None:
    salon = await _salon(db)
    day, new_day = next_weekday(2), next_weekday(3)
    if function in ("cancel_appointment", "reschedule_appointment", "list_appointments"):
        booked = await call_function(
            booking,
            salon,
            "book_appointment",
            {
                "service": "Herrenhaarschnitt",
                "date": day.isoformat(),
                "time": "10:00",
                "customer_name": "Max Mustermann",
            },
        )
        assert booked.json()["status"] == "booked", booked.text
    schema = parameters(SPECS[function].args)
    args = {
        name: _value(name, schema["properties"][name], day, new_day) for name in schema["required"]
    }
    jsonschema.validate(args, schema)
    body = {"call": {"call_id": "c_x", "from_number": CALLER}, "name": function, "args": args}
    jsonschema.validate(body, request_body()["content"]["application/json"]["schema"])

    response = await call_function(booking, salon, function, args)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == ANSWERED[function], response.text
    appointments = await _count(db, salon, Appointment)
    callbacks = await _count(db, salon, CallbackRequest)
    assert (appointments, callbacks) == (
        0 if function in ("check_availability", "request_callback") else 1,
        1 if function == "request_callback" else 0,
    )


async def test_an_unknown_function_is_a_404_naming_it_and_changes_nothing(
    booking: httpx.AsyncClient, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    salon = await _salon(db)
    args = {
        "service": "Herrenhaarschnitt",
        "date": next_weekday(2).isoformat(),
        "time": "10:00",
        "customer_name": "Max Mustermann",
    }
    with caplog.at_level(logging.WARNING, logger="services.booking.agent.api"):
        response = await call_function(booking, salon, "book_apointment", args)

    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "unknown_function"
    assert problem["function"] == "book_apointment"
    assert problem["known"] == list(FUNCTIONS)
    assert "'book_apointment'" in problem["detail"] and "book_appointment" in problem["detail"]
    for model in (Appointment, CallbackRequest, IdempotencyKey):
        assert await _count(db, salon, model) == 0
    assert [r.getMessage() for r in caplog.records if r.name.endswith("agent.api")] == [
        "Retell function unknown: book_apointment"
    ]


async def test_an_unregistered_number_and_a_bad_signature_are_told_apart_and_logged(
    booking: httpx.AsyncClient, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    salon = await _salon(db)
    url = "/v1/retell/functions/check_availability"
    args = {"service": "Herrenhaarschnitt", "date": next_weekday(2).isoformat()}

    def body(to_number: str) -> dict[str, Any]:
        call = {
            "call_id": f"c_{uuid.uuid4().hex[:8]}",
            "from_number": CALLER,
            "to_number": to_number,
        }
        return {"call": call, "name": "check_availability", "args": args}

    unknown_raw, unknown_headers = signed(body("+4930999999999"))
    bad_raw, bad_headers = signed(body(salon.phone_number), key="key_not_the_salons_0000000000")
    stale_raw, stale_headers = signed(body(salon.phone_number), ts=1_000_000_000_000)
    with caplog.at_level(logging.WARNING, logger="services.booking.agent.api"):
        unknown = await booking.post(url, content=unknown_raw, headers=unknown_headers)
        bad = await booking.post(url, content=bad_raw, headers=bad_headers)
        stale = await booking.post(url, content=stale_raw, headers=stale_headers)

    assert (unknown.status_code, unknown.json()["code"]) == (404, "retell_number_unknown")
    assert unknown.json()["to_number"] == "+4930999999999"
    assert "/v1/admin/phone-numbers" in unknown.json()["detail"]
    assert (bad.status_code, bad.json()["code"]) == (401, "retell_signature_invalid")
    assert (stale.status_code, stale.json()["code"]) == (401, "retell_signature_invalid")
    for response in (unknown, bad, stale):
        assert response.headers["content-type"] == "application/problem+json"
    lines = [r for r in caplog.records if r.name.endswith("agent.api")]
    assert [r.getMessage() for r in lines] == [
        "Retell request refused: number_unknown",
        "Retell request refused: digest_mismatch",
        "Retell request refused: stale_timestamp",
    ]
    assert [getattr(r, "code", None) for r in lines] == [
        "retell_number_unknown",
        "retell_signature_invalid",
        "retell_signature_invalid",
    ]
    for secret in (RETELL_KEY, "key_not_the_salons", bad_headers["X-Retell-Signature"][-64:]):
        assert secret not in caplog.text
    assert await _count(db, salon, IdempotencyKey) == 0
