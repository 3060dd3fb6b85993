"""Notification configs over HTTP: the catalogue, validation, the hierarchy with provenance,
staff preferences, audit, never-stale cache, tenant isolation (both backends)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from services.notifications.catalog.event_types import DEFAULT_CHANNELS, EVENT_TYPES
from shared.db.engine import Database
from shared.models import NotificationConfigurationChange
from tests.conftest import Services
from tests.support.factories import Salon, create_salon

EVENTS = "/v1/notification-events"
CONFIGS = "/v1/notification-configs"


@pytest.fixture
def notifications(services: Services) -> httpx.AsyncClient:
    return services.clients["notifications"]


@pytest.fixture
async def salon(db: Database) -> Salon:
    return await create_salon(db)


async def put(
    client: httpx.AsyncClient,
    salon: Salon,
    level: str,
    entity_id: str,
    config: Any,
    event_type: str = "booking_confirmed",
    channel: str = "sms",
) -> httpx.Response:
    return await client.put(
        f"{CONFIGS}/{level}/{entity_id}/{event_type}/{channel}", json=config, headers=salon.headers
    )


async def effective(
    client: httpx.AsyncClient,
    salon: Salon,
    event_type: str = "booking_confirmed",
    channel: str = "sms",
    **target: str,
) -> dict[str, Any]:
    response = await client.get(
        f"{CONFIGS}/effective",
        params={"event_type": event_type, "channel": channel, **target},
        headers=salon.headers,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_13_event_types_with_labels_and_default_channels(
    notifications: httpx.AsyncClient, salon: Salon
) -> None:
    response = await notifications.get(EVENTS, headers=salon.headers)
    assert response.status_code == 200
    events = {event["event_type"]: event for event in response.json()["items"]}
    assert response.json()["next_cursor"] is None
    assert sorted(events) == sorted(EVENT_TYPES)
    assert len(events) == 13
    assert events["booking_confirmed"]["label_de"] == "Termin bestätigt"
    assert events["booking_confirmed"]["label_en"] == "Booking confirmed"
    assert events["callback_overdue"]["label_de"] == "Rückruf überfällig"
    for event_type, event in events.items():
        # The code's frozen copy of the catalogue matches the seeded table.
        assert tuple(event["default_channels"]) == DEFAULT_CHANNELS[event_type]


async def test_defaults_apply_without_any_config(
    notifications: httpx.AsyncClient, salon: Salon
) -> None:
    sms = await effective(notifications, salon, branch_id=salon.branch_id)
    assert sms["config"] == {
        "enabled": True,
        "recipients": ["customer"],
        "template_override": None,
        "notify_staff": True,
        "language": None,
    }
    assert set(sms["sources"].values()) == {"default"}
    whatsapp = await effective(notifications, salon, channel="whatsapp")
    assert whatsapp["config"]["enabled"] is False
    reminder = await effective(notifications, salon, event_type="booking_reminder_2h")
    assert reminder["config"]["reminder_offset_minutes"] == 120


async def test_branch_disabling_sms_wins_over_the_company(
    notifications: httpx.AsyncClient, salon: Salon, db: Database
) -> None:
    company = salon.tenant.company_id
    response = await put(
        notifications,
        salon,
        "company",
        company,
        {"enabled": True, "recipients": ["customer", {"address": "0170 9999999"}]},
    )
    assert response.status_code == 201, response.text
    assert response.json()["config"]["recipients"] == ["customer", {"address": "+491709999999"}]
    response = await put(notifications, salon, "branch", salon.branch_id, {"enabled": False})
    assert response.status_code == 201, response.text

    at_branch = await effective(notifications, salon, staff_id=salon.staff_ids[0])
    assert at_branch["config"]["enabled"] is False
    assert at_branch["sources"]["enabled"] == "branch"
    # Keys the branch does not set still come from the company.
    assert at_branch["config"]["recipients"] == ["customer", {"address": "+491709999999"}]
    assert at_branch["sources"]["recipients"] == "company"
    assert at_branch["chain"]["branch_id"] == salon.branch_id
    # The company level alone still says enabled.
    at_company = await effective(notifications, salon)
    assert at_company["config"]["enabled"] is True
    assert at_company["sources"]["enabled"] == "company"
    # Email is another channel: untouched.
    email = await effective(notifications, salon, channel="email", branch_id=salon.branch_id)
    assert email["config"]["enabled"] is True
    assert email["sources"]["enabled"] == "default"


async def test_staff_preference_overrides_only_what_staff_may_set(
    notifications: httpx.AsyncClient, salon: Salon
) -> None:
    staff = salon.staff_ids[0]
    company = salon.tenant.company_id
    refused = await put(notifications, salon, "staff", staff, {"enabled": False})
    assert refused.status_code == 422
    assert refused.json()["field"] == "enabled"
    refused = await put(notifications, salon, "staff", staff, {"recipients": ["staff"]})
    assert refused.status_code == 422
    assert refused.json()["field"] == "recipients"

    await put(
        notifications,
        salon,
        "company",
        company,
        {"recipients": ["customer", "staff"]},
        event_type="booking_cancelled",
        channel="email",
    )
    ok = await put(
        notifications,
        salon,
        "staff",
        staff,
        {"notify_staff": False, "language": "en"},
        event_type="booking_cancelled",
        channel="email",
    )
    assert ok.status_code == 201, ok.text
    mine = await effective(
        notifications, salon, event_type="booking_cancelled", channel="email", staff_id=staff
    )
    assert mine["config"]["recipients"] == ["customer"]
    assert mine["config"]["notify_staff"] is False
    assert mine["config"]["language"] == "en"
    assert mine["config"]["enabled"] is True
    assert mine["sources"] == {
        "enabled": "default",
        "recipients": "company",
        "template_override": "default",
        "notify_staff": "staff",
        "language": "staff",
    }
    colleague = await effective(
        notifications,
        salon,
        event_type="booking_cancelled",
        channel="email",
        staff_id=salon.staff_ids[1],
    )
    assert colleague["config"]["recipients"] == ["customer", "staff"]


@pytest.mark.parametrize(
    ("path", "config", "field"),
    [
        ("company/{company}/booking_confirmd/sms", {"enabled": True}, "event_type"),
        ("company/{company}/booking_confirmed/fax", {"enabled": True}, "channel"),
        ("region/{company}/booking_confirmed/sms", {"enabled": True}, "level"),
        ("company/{company}/booking_confirmed/sms", {"enabeld": True}, "enabeld"),
        ("company/{company}/booking_confirmed/sms", {"enabled": "yes"}, "enabled"),
        (
            "company/{company}/booking_confirmed/email",
            {"recipients": [{"address": "nope@"}]},
            "recipients[0].address",
        ),
        (
            "company/{company}/booking_confirmed/sms",
            {"recipients": ["customer", {"address": "12"}]},
            "recipients[1].address",
        ),
        ("company/{company}/booking_confirmed/sms", {"recipients": ["boss"]}, "recipients[0]"),
        ("company/{company}/booking_confirmed/sms", {"recipients": "customer"}, "recipients"),
        (
            "company/{company}/booking_confirmed/email",
            {"reminder_offset_minutes": 60},
            "reminder_offset_minutes",
        ),
        (
            "company/{company}/booking_reminder_24h/email",
            {"reminder_offset_minutes": 0},
            "reminder_offset_minutes",
        ),
        (
            "company/{company}/booking_reminder_24h/email",
            {"reminder_offset_minutes": 10081},
            "reminder_offset_minutes",
        ),
        ("company/{company}/booking_confirmed/email", {"language": "fr"}, "language"),
        (
            "company/{company}/booking_confirmed/email",
            {"template_override": "Hallo {{ kunde }}"},
            "template_override",
        ),
        (
            "company/{company}/booking_confirmed/email",
            {"template_override": "Hallo {{ x"},
            "template_override",
        ),
    ],
)
async def test_invalid_configs_are_refused_naming_the_key_and_change_nothing(
    notifications: httpx.AsyncClient,
    salon: Salon,
    db: Database,
    path: str,
    config: Any,
    field: str,
) -> None:
    url = f"{CONFIGS}/" + path.format(company=salon.tenant.company_id)
    response = await notifications.put(url, json=config, headers=salon.headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == field
    listed = await notifications.get(CONFIGS, headers=salon.headers)
    assert listed.json()["items"] == []


async def test_unknown_entity_is_404(notifications: httpx.AsyncClient, salon: Salon) -> None:
    response = await put(notifications, salon, "branch", "no-such-branch", {"enabled": False})
    assert response.status_code == 404


async def test_writes_are_audited_and_visible_at_once(
    notifications: httpx.AsyncClient, salon: Salon, db: Database
) -> None:
    company = salon.tenant.company_id
    assert (await effective(notifications, salon))["config"]["enabled"] is True  # now cached
    await put(notifications, salon, "company", company, {"enabled": False})
    assert (await effective(notifications, salon))["config"]["enabled"] is False
    await put(notifications, salon, "company", company, {"enabled": True, "language": "en"})
    assert (await effective(notifications, salon))["config"]["language"] == "en"
    deleted = await notifications.delete(
        f"{CONFIGS}/company/{company}/booking_confirmed/sms", headers=salon.headers
    )
    assert deleted.status_code == 204
    after = await effective(notifications, salon)
    assert after["config"]["language"] is None
    assert after["sources"]["enabled"] == "default"
    async with db.transaction(company, write=False) as session:
        changes = (
            await session.scalars(
                sa.select(NotificationConfigurationChange).order_by(
                    NotificationConfigurationChange.changed_at
                )
            )
        ).all()
    assert [(c.before, c.after) for c in changes] == [
        (None, {"enabled": False}),
        ({"enabled": False}, {"enabled": True, "language": "en"}),
        ({"enabled": True, "language": "en"}, None),
    ]
    assert {c.channel for c in changes} == {"sms"}


async def test_another_company_cannot_see_or_touch_the_config(
    notifications: httpx.AsyncClient, salon: Salon, db: Database
) -> None:
    other = await create_salon(db)
    company = salon.tenant.company_id
    await put(notifications, salon, "branch", salon.branch_id, {"enabled": False})
    url = f"{CONFIGS}/branch/{salon.branch_id}/booking_confirmed/sms"
    assert (await notifications.get(url, headers=other.headers)).status_code == 404
    assert (
        await put(notifications, other, "branch", salon.branch_id, {"enabled": True})
    ).status_code == 404
    assert (await notifications.delete(url, headers=other.headers)).status_code == 404
    response = await notifications.get(
        f"{CONFIGS}/effective",
        params={"event_type": "booking_confirmed", "channel": "sms", "branch_id": salon.branch_id},
        headers=other.headers,
    )
    assert response.status_code == 404
    assert (await notifications.get(url, headers=salon.headers)).json()["config"] == {
        "enabled": False
    }
    assert company != other.tenant.company_id
