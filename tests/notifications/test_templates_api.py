"""Template API over HTTP: company templates, validation at save, previews, isolation, auth."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from services.notifications.templates.defaults import DEFAULTS
from shared.db.engine import Database
from shared.models import NotificationTemplate
from tests.conftest import Services
from tests.support.factories import Tenant, create_salon, create_tenant

BASE = "/v1/notification-templates"
BODY = "Hallo {{ customer_name }},\n\nbis {{ start }} in {{ branch }}!\n{{ company }}"


@pytest.fixture
def api(services: Services) -> httpx.AsyncClient:
    return services.clients["notifications"]


def url(event_type: str = "booking_confirmed", channel: str = "email", language: str = "de") -> str:
    return f"{BASE}/{event_type}/{channel}/{language}"


async def stored(db: Database, company_id: str) -> list[NotificationTemplate]:
    async with db.transaction(company_id, write=False) as session:
        rows = await session.scalars(
            sa.select(NotificationTemplate).order_by(NotificationTemplate.event_type)
        )
        return list(rows)


def problem(response: httpx.Response, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


async def test_get_gives_the_default_until_the_company_has_its_own(
    api: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    response = await api.get(url("booking_confirmed", "email", "en"), headers=salon.headers)
    assert response.status_code == 200, response.text
    subject, body = DEFAULTS["booking_confirmed", "email", "en"]
    assert response.json() == {
        "event_type": "booking_confirmed",
        "channel": "email",
        "language": "en",
        "subject": subject,
        "body": body,
        "source": "default",
        "updated_at": None,
        "updated_by": None,
    }


async def test_put_creates_then_replaces_and_delete_restores_the_default(
    api: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    created = await api.put(
        url(), json={"subject": "Termin {{ date }}", "body": BODY}, headers=salon.headers
    )
    assert created.status_code == 201, created.text
    assert created.json()["source"] == "company"
    assert created.json()["subject"] == "Termin {{ date }}"
    assert created.json()["updated_by"]

    fetched = (await api.get(url(), headers=salon.headers)).json()
    assert (fetched["source"], fetched["subject"], fetched["body"]) == (
        "company",
        "Termin {{ date }}",
        BODY,
    )

    replaced = await api.put(url(), json={"body": "Bis {{ time }}!"}, headers=salon.headers)
    assert replaced.status_code == 200, replaced.text
    # Without an own subject the email keeps the built-in one.
    assert replaced.json()["subject"] == DEFAULTS["booking_confirmed", "email", "de"][0]
    rows = await stored(db, salon.tenant.company_id)
    assert [(r.event_type, r.channel, r.language, r.subject, r.body) for r in rows] == [
        ("booking_confirmed", "email", "de", None, "Bis {{ time }}!")
    ]

    deleted = await api.delete(url(), headers=salon.headers)
    assert deleted.status_code == 204, deleted.text
    assert (await api.get(url(), headers=salon.headers)).json()["source"] == "default"
    assert await stored(db, salon.tenant.company_id) == []
    missing = problem(await api.delete(url(), headers=salon.headers), 404)
    assert missing["code"] == "not_found"


async def test_templates_are_kept_per_channel_and_language(
    api: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    for channel, language in (("sms", "de"), ("sms", "en"), ("whatsapp", "de")):
        response = await api.put(
            url("booking_reminder_2h", channel, language),
            json={"body": f"{channel}/{language} {{{{ time }}}}"},
            headers=salon.headers,
        )
        assert response.status_code == 201, response.text
    sms_en = (await api.get(url("booking_reminder_2h", "sms", "en"), headers=salon.headers)).json()
    assert (sms_en["body"], sms_en["subject"]) == ("sms/en {{ time }}", None)
    email = (await api.get(url("booking_reminder_2h", "email", "de"), headers=salon.headers)).json()
    assert email["source"] == "default"
    assert len(await stored(db, salon.tenant.company_id)) == 3


async def test_an_invalid_template_is_refused_naming_field_and_line(
    api: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    bad_syntax = problem(
        await api.put(
            url(), json={"body": "Hallo\n\n{% if staff }}x{% endif %}"}, headers=salon.headers
        )
    )
    assert bad_syntax["detail"] == "line 3: unexpected '}'"
    assert (bad_syntax["field"], bad_syntax["line"]) == ("body", 3)

    unknown = problem(
        await api.put(
            url("booking_cancelled"),
            json={"subject": "Storno", "body": "Hallo\nGebühr: {{ fee_amount }}"},
            headers=salon.headers,
        )
    )
    assert unknown["detail"] == "line 2: unknown variable 'fee_amount'"
    assert unknown["errors"] == [{"field": "body", "message": unknown["detail"]}]

    subject = problem(
        await api.put(
            url(), json={"subject": "{{ ''.__class__ }}", "body": "x"}, headers=salon.headers
        )
    )
    assert subject["field"] == "subject"
    assert subject["detail"].startswith("line 1: attribute access is not allowed")

    sms_subject = problem(
        await api.put(
            url(channel="sms"), json={"subject": "Hi", "body": "x"}, headers=salon.headers
        )
    )
    assert (sms_subject["field"], sms_subject["detail"]) == (
        "subject",
        "A sms message has no subject.",
    )
    empty = problem(await api.put(url(), json={"body": " "}, headers=salon.headers))
    assert (empty["field"], empty["detail"]) == ("body", "The body must not be empty.")
    assert await stored(db, salon.tenant.company_id) == []


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (f"{BASE}/booking_exploded/email/de", "event_type"),
        (f"{BASE}/booking_confirmed/fax/de", "channel"),
        (f"{BASE}/booking_confirmed/email/fr", "language"),
    ],
)
async def test_unknown_path_parts_are_named(
    api: httpx.AsyncClient, db: Database, path: str, field: str
) -> None:
    salon = await create_salon(db)
    for response in (
        await api.get(path, headers=salon.headers),
        await api.put(path, json={"body": "x"}, headers=salon.headers),
        await api.delete(path, headers=salon.headers),
    ):
        body = problem(response)
        assert body["field"] == field
        assert body["detail"] == f"Invalid value for: {field}"


async def test_preview_uses_the_given_then_the_company_then_the_default_text(
    api: httpx.AsyncClient, db: Database
) -> None:
    salon = await create_salon(db)
    preview = f"{BASE}/preview"
    default = await api.post(
        preview, json={"event_type": "booking_confirmed", "channel": "sms"}, headers=salon.headers
    )
    assert default.status_code == 200, default.text
    assert default.json() == {
        "subject": None,
        "body": "Salon Schnittpunkt: Ihr Termin am 24.11.2026 um 14:30 Uhr ist bestätigt "
        "(Damenhaarschnitt bei Anna). Ort: Mitte, Torstraße 12, 10119 Berlin. Buchungsnr.: "
        "K7M2P9. Bitte sagen Sie rechtzeitig ab, falls Sie nicht kommen können: +49 30 1234567.",
    }

    given = await api.post(
        preview,
        json={
            "event_type": "booking_confirmed",
            "channel": "email",
            "language": "en",
            "subject": "See you {{ date }}",
            "body": BODY,
        },
        headers=salon.headers,
    )
    assert given.json() == {
        "subject": "See you 24 November 2026",
        "body": "Hallo Maria Schneider,\n\nbis Tuesday, 24 November 2026 at 14:30 in Mitte!\n"
        "Salon Schnittpunkt",
    }

    await api.put(url(), json={"body": "Eigener Text: {{ time }}"}, headers=salon.headers)
    company = await api.post(
        preview,
        json={"event_type": "booking_confirmed", "channel": "email"},
        headers=salon.headers,
    )
    assert company.json() == {
        "subject": "Terminbestätigung: Damenhaarschnitt am 24.11.2026 um 14:30 Uhr",
        "body": "Eigener Text: 14:30",
    }
    only_subject = await api.post(
        preview,
        json={"event_type": "booking_confirmed", "channel": "email", "subject": "Neu: {{ date }}"},
        headers=salon.headers,
    )
    assert only_subject.json() == {"subject": "Neu: 24.11.2026", "body": "Eigener Text: 14:30"}


async def test_preview_validates_like_a_save(api: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    refused = problem(
        await api.post(
            f"{BASE}/preview",
            json={
                "event_type": "callback_overdue",
                "channel": "sms",
                "body": "Rückruf {{ callback_phone }}\n{{ service|upper }}",
            },
            headers=salon.headers,
        )
    )
    assert refused["detail"] == "line 2: unknown variable 'service'"
    assert (refused["field"], refused["line"]) == ("body", 2)
    unknown = problem(
        await api.post(
            f"{BASE}/preview",
            json={"event_type": "callback_exploded", "channel": "sms"},
            headers=salon.headers,
        )
    )
    assert unknown["field"] == "event_type"


async def test_a_company_sees_only_its_own_templates(api: httpx.AsyncClient, db: Database) -> None:
    a, b = await create_salon(db), await create_salon(db)
    response = await api.put(url(), json={"body": "Nur für A"}, headers=a.headers)
    assert response.status_code == 201, response.text

    seen_by_b = (await api.get(url(), headers=b.headers)).json()
    assert seen_by_b["source"] == "default"
    assert seen_by_b["body"] == DEFAULTS["booking_confirmed", "email", "de"][1]
    preview_b = await api.post(
        f"{BASE}/preview",
        json={"event_type": "booking_confirmed", "channel": "email"},
        headers=b.headers,
    )
    assert "Nur für A" not in preview_b.json()["body"]
    problem(await api.delete(url(), headers=b.headers), 404)

    # B's own template is a second row; A's stays as it was.
    assert (await api.put(url(), json={"body": "Nur für B"}, headers=b.headers)).status_code == 201
    assert (await api.get(url(), headers=a.headers)).json()["body"] == "Nur für A"
    assert [r.body for r in await stored(db, a.tenant.company_id)] == ["Nur für A"]
    assert [r.body for r in await stored(db, b.tenant.company_id)] == ["Nur für B"]


async def test_scopes(api: httpx.AsyncClient, db: Database) -> None:
    operator: Tenant = await create_tenant(db, scopes=["operator"])
    agent: Tenant = await create_tenant(db, scopes=["agent"])
    assert (await api.get(url(), headers=operator.headers)).status_code == 200
    preview = await api.post(
        f"{BASE}/preview",
        json={"event_type": "booking_confirmed", "channel": "sms"},
        headers=operator.headers,
    )
    assert preview.status_code == 200, preview.text
    # Changing texts customers receive takes an admin key, as changing policies does.
    assert problem(await api.put(url(), json={"body": "x"}, headers=operator.headers), 403)
    assert problem(await api.delete(url(), headers=operator.headers), 403)
    assert problem(await api.get(url(), headers=agent.headers), 403)["code"] == "forbidden"
    assert problem(await api.get(url()), 401)["code"] == "unauthorized"


async def test_concurrent_first_puts_of_one_template(api: httpx.AsyncClient, db: Database) -> None:
    salon = await create_salon(db)
    for event_type in ("booking_confirmed", "booking_cancelled", "callback_overdue"):
        bodies = ["Erster {{ company }}", "Zweiter {{ company }}"]
        responses = await asyncio.gather(
            *(
                api.put(url(event_type, "sms"), json={"body": body}, headers=salon.headers)
                for body in bodies
            )
        )
        assert sorted(r.status_code for r in responses) == [200, 201], [r.text for r in responses]
    rows = await stored(db, salon.tenant.company_id)
    assert sorted(r.event_type for r in rows) == [
        "booking_cancelled",
        "booking_confirmed",
        "callback_overdue",
    ]
    assert {r.body for r in rows} <= {"Erster {{ company }}", "Zweiter {{ company }}"}
