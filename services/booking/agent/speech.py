"""German sentences the phone agent reads aloud: one message per outcome.

Pure functions of their arguments. All wording lives in `wording` (reviewed in one place), how
dates, times, money and lists are said in `spoken`; the builders here only choose a sentence
and fill it. Sentences that list slots or appointments drop items from the end until they fit
`MAX_MESSAGE_CHARS`: a caller cannot keep more than a few options in mind anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Final, TypeAlias, TypeVar

from services.booking.agent.spoken import (
    TzLike,
    spoken_count,
    spoken_date,
    spoken_datetime,
    spoken_list,
    spoken_money,
    spoken_time,
    wall_clock,
)
from services.booking.agent.wording import (
    ACTION_WORDS,
    ASK,
    ASK_AMBIGUOUS,
    ASK_FIELDS,
    ASK_LAST_DAY,
    REASON,
    REASON_CODES,
    REASON_DEADLINE,
    REASON_FALLBACK,
    TEXT,
    Action,
    AskField,
)

# Callers reach the whole spoken vocabulary through this module.
__all__ = [
    "ASK_FIELDS",
    "MAX_MESSAGE_CHARS",
    "REASON_CODES",
    "Action",
    "AskField",
    "SpokenSlot",
    "TzLike",
    "appointment_not_found",
    "appointments_list",
    "ask_for",
    "booked",
    "callback_created",
    "callback_unavailable",
    "cancel_not_allowed",
    "cancelled",
    "identify_by_reference",
    "needs_callback",
    "no_appointments_found",
    "no_slots",
    "not_identified",
    "rate_limited",
    "rescheduled",
    "service_unavailable",
    "slot_taken_with_alternatives",
    "slots_available",
    "spoken_date",
    "spoken_datetime",
    "spoken_list",
    "spoken_money",
    "spoken_time",
    "tries_exhausted",
]

MAX_MESSAGE_CHARS: Final = 300
MAX_SPOKEN_SLOTS: Final = 5
MAX_SPOKEN_APPOINTMENTS: Final = 3
MAX_SPOKEN_OPTIONS: Final = 5

# A bookable start, optionally with the staff member's name ("bei Anna").
SpokenSlot: TypeAlias = datetime | tuple[datetime, str | None]
_T = TypeVar("_T")


def _fit(render: Callable[[Sequence[_T]], str], items: Sequence[_T]) -> str:
    """render(items), dropping items from the end until the sentence is short enough."""
    for count in range(len(items), 1, -1):
        text = render(items[:count])
        if len(text) < MAX_MESSAGE_CHARS:
            return text
    return render(items[:1])


def _slot(slot: SpokenSlot) -> tuple[datetime, str | None]:
    return (slot, None) if isinstance(slot, datetime) else slot


def _with_staff(when: str, staff: str | None) -> str:
    return TEXT["at_staff"].format(when=when, staff=staff) if staff else when


def _fee(fee: Decimal | None, currency: str) -> str:
    return TEXT["fee"].format(fee=spoken_money(fee, currency)) if fee else ""


def _offer(slots: Sequence[SpokenSlot], tz: TzLike) -> tuple[date | None, list[str]]:
    """Phrases for slots: times only when all fall on one local day (returned), else full."""
    local = [(wall_clock(start, tz), staff) for start, staff in map(_slot, slots)]
    days = {start.date() for start, _ in local}
    if len(days) == 1:
        phrases = [_with_staff(spoken_time(start.time()), staff) for start, staff in local]
        return days.pop(), phrases
    full = [
        _with_staff(f"{spoken_date(start.date())} um {spoken_time(start.time())}", staff)
        for start, staff in local
    ]
    return None, full


def slots_available(service_name: str, slots: Sequence[SpokenSlot], tz_name: TzLike) -> str:
    """Offer up to MAX_SPOKEN_SLOTS free slots for a service and ask which one suits."""

    def render(shown: Sequence[SpokenSlot]) -> str:
        day, phrases = _offer(shown, tz_name)
        if len(shown) == 1:
            start, staff = _slot(shown[0])
            when = _with_staff(spoken_datetime(start, tz_name), staff)
            return TEXT["slots_one"].format(service=service_name, when=when)
        if day is not None:
            return TEXT["slots_day"].format(
                service=service_name, day=spoken_date(day), slots=spoken_list(phrases)
            )
        return TEXT["slots_many"].format(service=service_name, slots=spoken_list(phrases))

    if not slots:
        return TEXT["slots_none"].format(service=service_name)
    return _fit(render, slots[:MAX_SPOKEN_SLOTS])


def no_slots(service_name: str, day: date) -> str:
    """Nothing free for the service on that day; offer to look at another day."""
    return TEXT["no_slots"].format(service=service_name, day=spoken_date(day))


def booked(
    service_name: str,
    start: datetime,
    staff_name: str | None,
    tz_name: TzLike,
    reference: str | None = None,
) -> str:
    """Confirm a booking; the reference spelled for text-to-speech ("K 7 M 2 P 9")."""
    when = _with_staff(spoken_datetime(start, tz_name), staff_name)
    text = TEXT["booked"].format(service=service_name, when=when)
    if reference:
        text += TEXT["reference"].format(reference=" ".join(reference))
    return text


def identify_by_reference() -> str:
    """No caller ID: ask for the booking reference and the name on the booking."""
    return TEXT["identify"]


def not_identified() -> str:
    """No caller ID and the reference and name do not name an appointment."""
    return TEXT["not_identified"]


def tries_exhausted() -> str:
    """No caller ID and the tries of this call or reference are spent."""
    return TEXT["tries_exhausted"]


def slot_taken_with_alternatives(
    start: datetime, alternatives: Sequence[SpokenSlot], tz_name: TzLike
) -> str:
    """The requested slot is gone; offer the alternatives (if any) and ask which one suits."""
    head = TEXT["taken"].format(when=spoken_datetime(start, tz_name))
    requested_day = wall_clock(start, tz_name).date()

    def day_phrase(day: date) -> str:
        if day == requested_day:
            return TEXT["same_day"]
        return TEXT["on_day"].format(day=spoken_date(day))

    def render(shown: Sequence[SpokenSlot]) -> str:
        day, phrases = _offer(shown, tz_name)
        if day is not None and len(shown) == 1:
            return head + TEXT["alt_one"].format(day=day_phrase(day), when=phrases[0])
        if day is not None:
            return head + TEXT["alt_day"].format(day=day_phrase(day), slots=spoken_list(phrases))
        return head + TEXT["alt_many"].format(slots=spoken_list(phrases))

    if not alternatives:
        return head + TEXT["alt_none"]
    return _fit(render, alternatives[:MAX_SPOKEN_SLOTS])


def cancelled(
    start: datetime,
    tz_name: TzLike,
    fee: Decimal | None = None,
    *,
    currency: str = "EUR",
    service_name: str | None = None,
) -> str:
    """Confirm a cancellation, naming the fee when one applies."""
    when = spoken_datetime(start, tz_name)
    if service_name:
        text = TEXT["cancelled_service"].format(service=service_name, when=when)
    else:
        text = TEXT["cancelled"].format(when=when)
    return text + _fee(fee, currency)


def cancel_not_allowed(
    reason_code: str,
    deadline: datetime | None = None,
    fee: Decimal | None = None,
    *,
    tz_name: TzLike | None = None,
    currency: str = "EUR",
    action: Action = "cancel",
) -> str:
    """Explain a policy outcome (any reason code) for a cancellation or a reschedule.

    `deadline` (the free-change deadline) needs `tz_name` to be spoken.
    """
    if deadline is not None and tz_name is None:
        raise ValueError("a deadline needs tz_name to be spoken in local time")
    words = dict(ACTION_WORDS[action])
    words["fee"] = f" von {spoken_money(fee, currency)}" if fee else ""
    if deadline is not None and tz_name is not None and reason_code in REASON_DEADLINE:
        words["deadline"] = spoken_datetime(deadline, tz_name)
        return REASON_DEADLINE[reason_code].format(**words)
    return REASON.get(reason_code, REASON_FALLBACK).format(**words)


def rescheduled(
    old: datetime,
    new: datetime,
    tz_name: TzLike,
    fee: Decimal | None = None,
    *,
    currency: str = "EUR",
) -> str:
    """Confirm a reschedule, naming the fee when one applies."""
    old_local, new_local = wall_clock(old, tz_name), wall_clock(new, tz_name)
    if old_local.date() == new_local.date():
        text = TEXT["rescheduled_day"].format(
            day=spoken_date(old_local.date()),
            old=spoken_time(old_local.time()),
            new=spoken_time(new_local.time()),
        )
    else:
        text = TEXT["rescheduled"].format(
            old=spoken_datetime(old, tz_name), new=spoken_datetime(new, tz_name)
        )
    return text + _fee(fee, currency)


def appointment_not_found() -> str:
    """No appointment of the caller matches; ask for date and time."""
    return TEXT["not_found"]


def no_appointments_found() -> str:
    """The caller has no upcoming appointments."""
    return TEXT["none_found"]


def appointments_list(
    appointments: Sequence[tuple[datetime, str, str | None]], tz_name: TzLike
) -> str:
    """Read out the caller's appointments (start, service, staff), upcoming first, as given."""
    total = len(appointments)

    def render(shown: Sequence[tuple[datetime, str, str | None]]) -> str:
        items = spoken_list(
            [
                TEXT["appointment"].format(
                    service=service, when=_with_staff(spoken_datetime(start, tz_name), staff)
                )
                for start, service, staff in shown
            ],
            "und",
        )
        if total == 1:
            return TEXT["list_one"].format(items=items)
        if len(shown) == total:
            return TEXT["list_all"].format(count=spoken_count(total), items=items)
        if len(shown) == 1:
            return TEXT["list_next_one"].format(count=spoken_count(total), items=items)
        return TEXT["list_next"].format(
            count=spoken_count(total), shown=spoken_count(len(shown)), items=items
        )

    if not appointments:
        return no_appointments_found()
    return _fit(render, appointments[:MAX_SPOKEN_APPOINTMENTS])


def callback_created(preferred_time: str | None = None) -> str:
    """Confirm a callback request, repeating the caller's preferred time if given."""
    wish = (preferred_time or "").strip()
    if wish:
        text = TEXT["callback_time"].format(time=wish)
        if len(text) < MAX_MESSAGE_CHARS:
            return text
    return TEXT["callback"]


def needs_callback() -> str:
    """The request needs a human; offer a callback."""
    return TEXT["needs_callback"]


def ask_for(
    field: AskField,
    *,
    candidates: Sequence[str] = (),
    last_day: date | None = None,
) -> str:
    """Ask the caller for what an invalid request lacks.

    `candidates`: for "ambiguous" the names that matched ("Meinten Sie A oder B?"), for the
    "unknown_*" fields the names to choose from. `last_day`: the booking window's last day.
    """
    lead, question = ASK.get(field, ("", TEXT["repeat"]))
    options = list(candidates[:MAX_SPOKEN_OPTIONS])

    def render(shown: Sequence[str]) -> str:
        if field == "ambiguous" and shown:
            return ASK_AMBIGUOUS.format(options=spoken_list(shown))
        parts = [lead]
        if field == "beyond_booking_window" and last_day is not None:
            parts.append(ASK_LAST_DAY.format(last_day=spoken_date(last_day)))
        if field.startswith("unknown_") and shown:
            key = "options_one" if len(shown) == 1 else "options"
            parts.append(TEXT[key].format(options=spoken_list(shown, "und")))
        parts.append(question)
        return " ".join(part for part in parts if part)

    return _fit(render, options) if options else render(())


def rate_limited() -> str:
    """Too many requests right now: ask for a moment."""
    return TEXT["rate_limited"]


def service_unavailable() -> str:
    """The backend cannot do it right now: offer a callback."""
    return TEXT["unavailable"]


def callback_unavailable() -> str:
    """A callback request cannot be taken right now: ask the caller to call again."""
    return TEXT["callback_unavailable"]
