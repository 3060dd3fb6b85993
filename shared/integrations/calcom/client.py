"""Cal.com API v2 client: one company's bookings and free slots.

Every request (through `shared.integrations.calcom.transport`) carries the `cal-api-version`
the OpenAPI document names for its path (without it Cal.com silently answers in an older
shape), goes through the company's circuit breaker, is logged in `api_call_logs` with personal
data redacted and counted in Prometheus. Failures are sorted into `CalcomTransient` (retry
later) and `CalcomRejected` (never retry); the client itself never retries: the jobs decide,
with `shared.integrations.calcom.retry.backoff_delay`.

A company's base URL is tenant input: `for_company` re-checks it (`shared.security.outbound`)
and wants an `outbound_client`, whose connections refuse private addresses (a refusal is the
permanent `CalcomAddressRefused`). Error messages name the status or the kind of failure,
never what the remote side wrote (see `shared.integrations.calcom.errors`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import httpx

from shared.errors import OutboundUrlRefused
from shared.integrations.calcom.call_log import CallLog
from shared.integrations.calcom.errors import CalcomAddressRefused, CalcomError, CalcomRejected
from shared.integrations.calcom.models import (
    CalcomBooking,
    JsonObject,
    iso_z,
    one_booking,
    parse_instant,
    success_data,
)
from shared.integrations.calcom.transport import CalcomTransport
from shared.redis.circuit_breaker import CircuitBreaker
from shared.security.outbound import check_outbound_url, is_guarded

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from shared.config import Settings
    from shared.db.engine import Database
    from shared.models.company import Company

BOOKINGS_API_VERSION = "2024-08-13"
SLOTS_API_VERSION = "2024-09-04"
FIND_WINDOW = timedelta(days=1)


class CalcomClient(CalcomTransport):
    """One company's Cal.com bookings and free slots (the transport: `CalcomTransport`)."""

    @classmethod
    def for_company(
        cls,
        company: Company,
        *,
        settings: Settings,
        http: httpx.AsyncClient,
        redis: Redis | None,
        db: Database | None,
    ) -> CalcomClient:
        """The client for `company`; refused (CalcomRejected 401) when it has no Cal.com key/URL,
        CalcomAddressRefused when its base URL is not allowed (saved before the rules, or the
        allow-list changed since). `http` must come from
        `shared.security.outbound.outbound_client`."""
        base_url = company.calcom_base_url or settings.calcom_base_url
        if not base_url or not company.calcom_api_key:
            raise CalcomRejected(
                f"company {company.id} has no Cal.com API key or base URL configured", status=401
            )
        if not is_guarded(http):
            raise TypeError("tenant Cal.com calls need shared.security.outbound.outbound_client")
        try:
            base_url = check_outbound_url(base_url, settings)
        except OutboundUrlRefused:
            raise CalcomAddressRefused("base URL not allowed") from None
        return cls(
            base_url=base_url,
            api_key=company.calcom_api_key,
            company_id=company.id,
            http=http,
            breaker=CircuitBreaker(redis, f"calcom:{company.id}") if redis is not None else None,
            call_log=CallLog(db) if db is not None else None,
        )

    # -- bookings -------------------------------------------------------------------------

    async def create_booking(
        self,
        *,
        event_type_id: int,
        start: datetime,
        attendee_name: str,
        attendee_email: str,
        attendee_time_zone: str,
        attendee_phone: str | None,
        metadata: dict[str, str],
        length_minutes: int | None = None,
    ) -> CalcomBooking:
        """POST /v2/bookings; `metadata` carries our `appointment_id` (see find_by_appointment)."""
        attendee: JsonObject = {
            "name": attendee_name,
            "email": attendee_email,
            "timeZone": attendee_time_zone,
        }
        if attendee_phone:
            attendee["phoneNumber"] = attendee_phone
        body: JsonObject = {
            "start": iso_z(start),
            "eventTypeId": event_type_id,
            "attendee": attendee,
            "metadata": metadata,
        }
        if length_minutes is not None:
            body["lengthInMinutes"] = length_minutes
        endpoint = "/v2/bookings"
        answer = await self._call("POST", endpoint, "/v2/bookings", BOOKINGS_API_VERSION, json=body)
        return one_booking(success_data(answer, endpoint), endpoint)

    async def cancel_booking(self, uid: str, reason: str | None = None) -> CalcomBooking | None:
        """POST /v2/bookings/{uid}/cancel; None when Cal.com does not know the booking.

        Cancelling an already cancelled booking is a success: Cal.com refuses it with a 400,
        and the booking as it stands is returned instead.
        """
        endpoint = "/v2/bookings/{uid}/cancel"
        body: JsonObject = {"cancellationReason": reason} if reason else {}
        try:
            answer = await self._call(
                "POST", endpoint, f"/v2/bookings/{uid}/cancel", BOOKINGS_API_VERSION, json=body
            )
        except CalcomRejected as exc:
            if exc.status == 404:
                return None
            if exc.status == 400 and "cancel" in exc.remote_detail.lower():
                current = await self.get_booking(uid)
                if current is not None and current.status == "cancelled":
                    return current
            raise
        return one_booking(success_data(answer, endpoint), endpoint, uid)

    async def reschedule_booking(
        self, uid: str, start: datetime, reason: str | None = None
    ) -> CalcomBooking:
        """POST /v2/bookings/{uid}/reschedule; returns the NEW booking (it has a new uid)."""
        endpoint = "/v2/bookings/{uid}/reschedule"
        body: JsonObject = {"start": iso_z(start)}
        if reason:
            body["reschedulingReason"] = reason
        answer = await self._call(
            "POST", endpoint, f"/v2/bookings/{uid}/reschedule", BOOKINGS_API_VERSION, json=body
        )
        return one_booking(success_data(answer, endpoint), endpoint)

    async def get_booking(self, uid: str) -> CalcomBooking | None:
        """GET /v2/bookings/{uid}; None on 404."""
        endpoint = "/v2/bookings/{uid}"
        try:
            answer = await self._call("GET", endpoint, f"/v2/bookings/{uid}", BOOKINGS_API_VERSION)
        except CalcomRejected as exc:
            if exc.status == 404:
                return None
            raise
        return one_booking(success_data(answer, endpoint), endpoint, uid)

    async def list_bookings(
        self,
        *,
        after_updated_at: datetime | None = None,
        event_type_id: int | None = None,
        after_start: datetime | None = None,
        before_end: datetime | None = None,
        take: int = 100,
        skip: int = 0,
    ) -> list[CalcomBooking]:
        """One page of GET /v2/bookings with the given filters."""
        page, _has_next = await self._bookings_page(
            after_updated_at, event_type_id, after_start, before_end, take, skip
        )
        return page

    async def iter_bookings(
        self,
        *,
        after_updated_at: datetime | None = None,
        event_type_id: int | None = None,
        after_start: datetime | None = None,
        before_end: datetime | None = None,
        take: int = 100,
    ) -> AsyncIterator[CalcomBooking]:
        """Every booking matching the filters, page after page (`pagination.hasNextPage`)."""
        skip = 0
        while True:
            page, has_next = await self._bookings_page(
                after_updated_at, event_type_id, after_start, before_end, take, skip
            )
            for booking in page:
                yield booking
            if not has_next or not page:
                return
            skip += len(page)

    async def find_by_appointment(
        self, appointment_id: str, *, event_type_id: int, start: datetime
    ) -> CalcomBooking | None:
        """Our booking for `appointment_id` near `start`, if Cal.com has it (after an ambiguous
        failure: timeout, or a reset after Cal.com committed). An active booking wins over a
        cancelled one."""
        found: list[CalcomBooking] = []
        async for booking in self.iter_bookings(
            event_type_id=event_type_id,
            after_start=start - FIND_WINDOW,
            before_end=start + FIND_WINDOW,
        ):
            if booking.metadata.get("appointment_id") == appointment_id:
                found.append(booking)
        if not found:
            return None
        found.sort(key=lambda b: (b.status == "cancelled", b.rescheduled_to_uid is not None))
        return found[0]

    async def _bookings_page(
        self,
        after_updated_at: datetime | None,
        event_type_id: int | None,
        after_start: datetime | None,
        before_end: datetime | None,
        take: int,
        skip: int,
    ) -> tuple[list[CalcomBooking], bool]:
        params: dict[str, str] = {"take": str(take), "skip": str(skip)}
        if after_updated_at is not None:
            params["afterUpdatedAt"] = iso_z(after_updated_at)
            params["sortUpdatedAt"] = "asc"
        if event_type_id is not None:
            params["eventTypeId"] = str(event_type_id)
        if after_start is not None:
            params["afterStart"] = iso_z(after_start)
        if before_end is not None:
            params["beforeEnd"] = iso_z(before_end)
        endpoint = "/v2/bookings"
        answer = await self._call("GET", endpoint, endpoint, BOOKINGS_API_VERSION, params=params)
        data = success_data(answer, endpoint)
        if not isinstance(data, list):
            raise CalcomError(f"{endpoint} answered no booking list")
        # Recurring/seated items have other shapes; only plain bookings are ours to read.
        bookings = [
            CalcomBooking.from_api(item)
            for item in data
            if isinstance(item, dict) and "uid" in item and "start" in item
        ]
        pagination = answer.get("pagination") if answer else None
        has_next = isinstance(pagination, dict) and pagination.get("hasNextPage") is True
        return bookings, has_next

    # -- slots ----------------------------------------------------------------------------

    async def get_slots(
        self,
        *,
        event_type_id: int,
        start: date,
        end: date,
        time_zone: str,
        timeout_s: float | None = None,
        booking_uid_to_reschedule: str | None = None,
    ) -> list[datetime]:
        """Free slot starts (UTC, sorted) of the event type between the dates (inclusive).

        With `booking_uid_to_reschedule`, Cal.com does not count that booking as busy: the
        slots a booking can be moved to, its own current time included.
        """
        params = {
            "eventTypeId": str(event_type_id),
            "start": start.isoformat(),
            "end": end.isoformat(),
            "timeZone": time_zone,
        }
        if booking_uid_to_reschedule is not None:
            params["bookingUidToReschedule"] = booking_uid_to_reschedule
        endpoint = "/v2/slots"
        answer = await self._call(
            "GET", endpoint, endpoint, SLOTS_API_VERSION, params=params, timeout_s=timeout_s
        )
        data = success_data(answer, endpoint)
        if not isinstance(data, dict):
            raise CalcomError(f"{endpoint} answered no date map")
        slots: list[datetime] = []
        for day_slots in data.values():
            if not isinstance(day_slots, list):
                raise CalcomError(f"{endpoint} answered a day that is not a list")
            for slot in day_slots:
                raw = slot.get("start") if isinstance(slot, dict) else slot
                slots.append(parse_instant(raw, "slot start"))
        return sorted(slots)
