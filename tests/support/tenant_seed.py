"""One company with one of everything, made the way production makes it (the APIs where they
exist, the ORM for what only jobs write), and the ids of it by resource name.

Used by the two-tenant matrix (tests/foundation/test_tenant_matrix.py): tenant B's key is aimed
at tenant A's ids, so A must own a real row behind every id an operation can take.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from shared import models
from shared.db.engine import Database
from shared.db.tenancy import SYSTEM
from shared.db.types import utcnow
from shared.models import (
    ApiCallLog,
    AppointmentLock,
    AvailabilityCache,
    BookingFailure,
    Call,
    Company,
    NotificationDelivery,
    NotificationReminder,
    PhoneNumber,
)
from shared.security.api_keys import issue_key
from tests.booking.agent_support import enable_retell
from tests.conftest import Services
from tests.support.contracts import CALCOM
from tests.support.factories import Salon, create_salon, next_weekday

LEVELS = ("company", "branch", "service", "staff")
# Business rules above staff level; a staff member's level holds only notes (shared/hierarchy).
POLICY_CONFIGS: dict[str, dict[str, Any]] = {
    "company": {"hours_before": 24},
    "branch": {"hours_before": 12},
    "service": {"hours_before": 6},
    "staff": {"staff_note": "Bitte einen Tag vorher absagen"},
}
NOTIFICATION_EVENT = ("booking_confirmed", "email")
NOTIFICATION_CONFIG = {"language": "en"}
TEMPLATE = ("booking_confirmed", "email", "de")
CLOSED_DAY = "2031-12-24"  # a closed day of the branch (path parameter `{day}`)
ADMIN_COLLECTIONS = (
    "branches",
    "services",
    "staff",
    "staff-services",
    "working-hours",
    "time-off",
    "phone-numbers",
    "api-keys",
)


@dataclass
class Seeded:
    """A seeded company: its salon, Cal.com webhook secret and the ids of its rows.

    `ids` maps a resource name (`appointment`, `branch`, `staff-services`, ...) to one id of
    it."""

    salon: Salon
    calcom_secret: str
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def company_id(self) -> str:
        return self.salon.tenant.company_id

    @property
    def headers(self) -> dict[str, str]:
        return self.salon.headers

    def entity(self, level: str) -> str:
        """The id of the company's entity at a config level (the company itself at the top)."""
        return self.ids[level]


async def platform_key(db: Database, scopes: list[str]) -> tuple[str, str]:
    """A platform key (no company): its id and plaintext."""
    async with db.transaction(SYSTEM) as session:
        issued = issue_key(session, company_id=None, name="matrix", scopes=scopes)
        await session.flush()
        return issued.key.id, issued.plaintext


def calcom_headers(raw: bytes, secret: str) -> dict[str, str]:
    signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return {"X-Cal-Signature-256": signature, "Content-Type": "application/json"}


def calcom_delivery(uid: str) -> bytes:
    """Cal.com's published BOOKING_CREATED example with a booking uid of its own."""
    body = json.loads((CALCOM / "webhook-BOOKING_CREATED.example.json").read_text())
    body["payload"]["uid"] = uid
    return json.dumps(body).encode()


def _ok(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, f"{response.request.url}: {response.text}"
    if not response.content:
        return {}
    body: dict[str, Any] = response.json()
    return body


async def _set_company(db: Database, company_id: str, **values: Any) -> None:
    async with db.transaction(SYSTEM) as session:
        company = await session.get(Company, company_id)
        assert company is not None
        for name, value in values.items():
            setattr(company, name, value)


async def seed_company(services: Services, db: Database) -> Seeded:
    """A salon (branch, service, two staff, hours, number) plus time off, an operator key, a
    customer with a rescheduled appointment (made with an Idempotency-Key), an escalated
    callback, policy and notification configs at every level, a template, a stored Cal.com
    webhook event, a notification delivery and a call."""
    salon = await create_salon(db)
    await enable_retell(db, salon)
    secret = f"whsec_{uuid.uuid4().hex}"
    await _set_company(db, salon.tenant.company_id, calcom_webhook_secret=secret)
    seeded = Seeded(salon, secret)
    ids = seeded.ids
    ids.update(
        company=salon.tenant.company_id,
        branch=salon.branch_id,
        service=salon.service_id,
        staff=salon.staff_ids[0],
    )
    booking = services.clients["booking"]
    headers = salon.headers
    _ok(
        await booking.post(
            "/v1/admin/time-off",
            headers=headers,
            json={
                "staff_id": salon.staff_ids[1],
                "starts_at": "2031-07-01T08:00:00+02:00",
                "ends_at": "2031-07-01T12:00:00+02:00",
                "reason": "Urlaub",
            },
        ),
        201,
    )
    _ok(
        await booking.post(
            "/v1/admin/api-keys", headers=headers, json={"name": "ops", "scopes": ["operator"]}
        ),
        201,
    )
    branch_path = f"/v1/admin/branches/{salon.branch_id}"
    week = [{"weekday": wd, "start": "09:00", "end": "18:00"} for wd in range(6)]
    _ok(
        await booking.put(f"{branch_path}/opening-hours", headers=headers, json={"hours": week}),
        200,
    )
    closed = {"day": CLOSED_DAY, "name": "Heiligabend"}
    _ok(await booking.post(f"{branch_path}/closed-days", headers=headers, json=closed), 201)
    for collection in ADMIN_COLLECTIONS:
        listed = _ok(await booking.get(f"/v1/admin/{collection}", headers=headers), 200)
        assert listed["items"], f"{collection}: nothing seeded"
        ids[collection] = listed["items"][-1]["id"]

    day = next_weekday(1, at_least_days=10)
    made = _ok(
        await booking.post(
            "/v1/appointments",
            headers={**headers, "Idempotency-Key": f"seed-{uuid.uuid4().hex}"},
            json={
                "service_id": salon.service_id,
                "staff_id": salon.staff_ids[0],
                "start": f"{day.isoformat()}T10:00:00+01:00",
                "customer": {"name": "Erika Mandant", "phone": "+491701112233"},
            },
        ),
        201,
    )
    ids.update(appointment=made["id"], customer=made["customer_id"], customers=made["customer_id"])
    _ok(
        await booking.post(
            f"/v1/appointments/{made['id']}/reschedule",
            headers=headers,
            json={"start": f"{day.isoformat()}T11:00:00+01:00"},
        ),
        200,
    )
    callback = _ok(
        await booking.post(
            "/v1/callbacks",
            headers=headers,
            json={"phone_number": "+491701112233", "reason": "Rückruf", "customer_name": "Erika"},
        ),
        201,
    )
    ids["callback"] = callback["id"]
    _ok(
        await booking.post(
            f"/v1/callbacks/{callback['id']}/escalate",
            headers=headers,
            json={"reason": "Seed", "to": salon.staff_ids[1]},
        ),
        200,
    )
    await _seed_configs(services, seeded)
    await _seed_event(services, seeded)
    await _seed_rows(db, seeded)
    return seeded


async def _seed_configs(services: Services, seeded: Seeded) -> None:
    policy = services.clients["policy"]
    notifications = services.clients["notifications"]
    event_type, channel = NOTIFICATION_EVENT
    for level in LEVELS:
        entity = seeded.entity(level)
        _ok(
            await policy.put(
                f"/v1/policies/{level}/{entity}/cancellation",
                headers=seeded.headers,
                json=POLICY_CONFIGS[level],
            ),
            201,
        )
        _ok(
            await notifications.put(
                f"/v1/notification-configs/{level}/{entity}/{event_type}/{channel}",
                headers=seeded.headers,
                json=NOTIFICATION_CONFIG,
            ),
            201,
        )
    _ok(
        await notifications.put(
            "/v1/notification-templates/{}/{}/{}".format(*TEMPLATE),
            headers=seeded.headers,
            json={"subject": "Termin {{ date }}", "body": "Bis {{ time }}!"},
        ),
        200,
        201,
    )


async def _seed_event(services: Services, seeded: Seeded) -> None:
    raw = calcom_delivery(f"seed{uuid.uuid4().hex[:18]}")
    stored = _ok(
        await services.clients["webhooks"].post(
            f"/v1/webhooks/calcom/{seeded.company_id}",
            content=raw,
            headers=calcom_headers(raw, seeded.calcom_secret),
        ),
        202,
    )
    seeded.ids["webhook_event"] = stored["event_id"]


async def _seed_rows(db: Database, seeded: Seeded) -> None:
    """What only jobs and workers write: a delivery, a reminder, a call, an outbound call log,
    a recorded booking failure, an (expired) slot lock, a cached availability, and a Retell
    agent claimed by the company's number."""
    now = utcnow()
    salon, ids = seeded.salon, seeded.ids
    later = now + timedelta(days=30)
    async with db.transaction(seeded.company_id) as session:
        delivery = NotificationDelivery(
            event_id=f"seed:{uuid.uuid4().hex}",
            event_type=NOTIFICATION_EVENT[0],
            channel=NOTIFICATION_EVENT[1],
            recipient_key=uuid.uuid4().hex,
            recipient_masked="e***@example.com",
            recipient_kind="customer",
            language="de",
            appointment_id=ids["appointment"],
            status="sent",
            attempts=1,
            sent_at=now,
        )
        call = Call(
            retell_call_id=f"call_{uuid.uuid4().hex[:16]}",
            agent_id="agent_seed",
            branch_id=salon.branch_id,
            customer_id=ids["customer"],
            from_number="+491701112233",
            to_number=salon.phone_number,
            status="ended",
            started_at=now - timedelta(minutes=5),
            ended_at=now,
        )
        session.add_all(
            [
                delivery,
                call,
                NotificationReminder(
                    appointment_id=ids["appointment"],
                    event_type="booking_reminder_24h",
                    channel="email",
                    starts_at=later,
                    due_at=later - timedelta(hours=24),
                    staged_at=now,
                ),
                ApiCallLog(
                    service="calcom",
                    method="GET",
                    endpoint="/v2/bookings",
                    response_status=200,
                    duration_ms=12,
                    created_at=now,
                ),
                BookingFailure(
                    source="api",
                    error_code="service_unavailable",
                    error_message="seeded",
                    service_id=salon.service_id,
                    staff_id=salon.staff_ids[0],
                    starts_at=later,
                    http_status=503,
                    created_at=now,
                ),
                AppointmentLock(
                    branch_id=salon.branch_id,
                    staff_id=salon.staff_ids[0],
                    start_time=later,
                    end_time=later + timedelta(minutes=30),
                    lock_token=str(uuid.uuid4()),
                    expires_at=now - timedelta(minutes=1),
                    created_at=now - timedelta(minutes=2),
                ),
                AvailabilityCache(
                    cache_key=f"seed:{uuid.uuid4().hex}",
                    branch_id=salon.branch_id,
                    date=later.date(),
                    service_id=salon.service_id,
                    data={"slots": []},
                    expires_at=now - timedelta(minutes=1),
                    created_at=now - timedelta(minutes=2),
                ),
            ]
        )
        claim = getattr(models, "RetellAgent", None)  # the agent-id claim table, where it exists
        if claim is not None:
            agent_id = f"agent_{uuid.uuid4().hex[:16]}"
            session.add(claim(agent_id=agent_id))
            await session.flush()
            number = await session.scalar(
                sa.select(PhoneNumber).where(PhoneNumber.number == salon.phone_number)
            )
            assert number is not None
            number.retell_agent_id = agent_id
        await session.flush()
        ids.update(delivery=delivery.id, deliveries=delivery.id, call=call.id)
