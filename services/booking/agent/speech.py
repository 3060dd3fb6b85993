"""German sentences the phone agent reads aloud: dates, times, money and one message per outcome.

Pure functions of their arguments. All wording lives in `_TEXT`, `_REASON`, `_REASON_DEADLINE`
and `_ASK` so it can be reviewed in one place; the builders only choose a sentence and fill it.
Sentences that list slots or appointments drop items from the end until they fit
`MAX_MESSAGE_CHARS`: a caller cannot keep more than a few options in mind anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Final, Literal, TypeAlias, TypeVar, get_args
from zoneinfo import ZoneInfo

MAX_MESSAGE_CHARS: Final = 300
MAX_SPOKEN_SLOTS: Final = 5
MAX_SPOKEN_APPOINTMENTS: Final = 3
MAX_SPOKEN_OPTIONS: Final = 5

WEEKDAYS: Final = (
    "Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag",
)  # fmt: skip
MONTHS: Final = (
    "Januar", "Februar", "März", "April", "Mai", "Juni",
    "Juli", "August", "September", "Oktober", "November", "Dezember",
)  # fmt: skip
CURRENCY_NAMES: Final[Mapping[str, str]] = {"EUR": "Euro", "CHF": "Franken"}
_COUNT_WORDS: Final = (
    "null", "einen", "zwei", "drei", "vier", "fünf", "sechs",
    "sieben", "acht", "neun", "zehn", "elf", "zwölf",
)  # fmt: skip

# The policy service's reason codes (services/policy/evaluation.py `Reason`).
REASON_CODES: Final = (
    "ok", "late_fee", "deadline_passed", "appointment_in_past", "not_modifiable",
    "quota_exceeded", "max_reschedules_reached",
)  # fmt: skip
Action: TypeAlias = Literal["cancel", "reschedule"]
AskField: TypeAlias = Literal[
    "missing_service", "unknown_service", "unknown_staff", "unknown_branch",
    "missing_date", "invalid_date", "missing_time", "invalid_time",
    "date_in_past", "beyond_booking_window", "outside_opening_hours",
    "missing_customer_name", "missing_customer_phone", "missing_appointment", "ambiguous",
]  # fmt: skip
ASK_FIELDS: Final[tuple[AskField, ...]] = get_args(AskField)

TzLike: TypeAlias = str | tzinfo
# A bookable start, optionally with the staff member's name ("bei Anna").
SpokenSlot: TypeAlias = datetime | tuple[datetime, str | None]
_T = TypeVar("_T")

_TEXT: Final[Mapping[str, str]] = {
    "at_staff": "{when} bei {staff}",
    "fee": " Dafür fällt eine Gebühr von {fee} an.",
    "slots_one": "Für {service} habe ich am {when} einen freien Termin. Passt Ihnen das?",
    "slots_day": (
        "Für {service} habe ich am {day} folgende freie Termine: {slots}. Welcher passt Ihnen?"
    ),
    "slots_many": "Für {service} habe ich folgende freie Termine: {slots}. Welcher passt Ihnen?",
    "slots_none": (
        "Für {service} habe ich leider keinen freien Termin gefunden. "
        "Soll ich an einem anderen Tag nachsehen?"
    ),
    "no_slots": (
        "Für {service} habe ich am {day} leider keinen freien Termin mehr. "
        "Soll ich an einem anderen Tag nachsehen?"
    ),
    "booked": "Ihr Termin für {service} am {when} ist gebucht.",
    "reference": " Ihre Buchungsnummer ist {reference}.",
    "taken": "Der Termin am {when} ist leider schon vergeben.",
    "alt_none": (
        " Einen anderen freien Termin habe ich leider nicht gefunden. "
        "Möchten Sie es an einem anderen Tag versuchen?"
    ),
    "alt_one": (
        " Ich könnte Ihnen stattdessen einen Termin {day} um {when} anbieten. Passt Ihnen das?"
    ),
    "alt_day": " Ich könnte Ihnen {day} folgende Termine anbieten: {slots}. Welcher passt Ihnen?",
    "alt_many": " Ich könnte Ihnen folgende Termine anbieten: {slots}. Welcher passt Ihnen?",
    "same_day": "am selben Tag",
    "on_day": "am {day}",
    "cancelled": "Ihr Termin am {when} ist storniert.",
    "cancelled_service": "Ihr Termin für {service} am {when} ist storniert.",
    "rescheduled": "Ich habe Ihren Termin von {old} auf {new} verschoben.",
    "rescheduled_day": "Ich habe Ihren Termin am {day} von {old} auf {new} verschoben.",
    "not_found": (
        "Unter Ihrer Telefonnummer habe ich leider keinen passenden Termin gefunden. "
        "Können Sie mir bitte das Datum und die Uhrzeit Ihres Termins nennen?"
    ),
    "none_found": (
        "Unter Ihrer Telefonnummer habe ich keine anstehenden Termine gefunden. "
        "Möchten Sie einen neuen Termin vereinbaren?"
    ),
    # Callers without a caller ID prove which appointment is theirs (services/booking/
    # agent/identity.py); the same words whether the reference exists or not.
    "identify": (
        "Ihre Rufnummer ist leider nicht übermittelt. Nennen Sie mir bitte Ihre Buchungsnummer "
        "aus der Bestätigung und den Namen, auf den der Termin gebucht ist."
    ),
    "not_identified": (
        "Zu dieser Buchungsnummer und diesem Namen habe ich leider keinen Termin gefunden. "
        "Können Sie mir die Buchungsnummer bitte noch einmal Zeichen für Zeichen nennen?"
    ),
    "tries_exhausted": (
        "Es gab zu viele erfolglose Versuche, deshalb kann ich den Termin gerade nicht suchen. "
        "Bitte rufen Sie von der Nummer an, mit der Sie gebucht haben, oder versuchen Sie es "
        "in einer Stunde noch einmal. Soll ich einen Rückruf veranlassen?"
    ),
    "appointment": "{service} am {when}",
    "list_one": "Ich habe einen Termin für Sie gefunden: {items}.",
    "list_all": "Ich habe {count} Termine für Sie gefunden: {items}.",
    "list_next_one": "Ich habe {count} Termine für Sie gefunden, der nächste ist: {items}.",
    "list_next": "Ich habe {count} Termine für Sie gefunden, die nächsten {shown} sind: {items}.",
    "callback": (
        "Ich habe einen Rückruf für Sie veranlasst. "
        "Unser Team meldet sich so bald wie möglich bei Ihnen."
    ),
    "callback_time": (
        "Ich habe einen Rückruf für Sie veranlasst und als Wunschzeit {time} notiert. "
        "Unser Team meldet sich bei Ihnen."
    ),
    "needs_callback": (
        "Das kann ich am Telefon leider nicht direkt erledigen. "
        "Soll ich einen Rückruf durch unser Team veranlassen?"
    ),
    "rate_limited": "Einen Moment bitte, ich versuche es gleich noch einmal.",
    "unavailable": (
        "Entschuldigung, ich kann das gerade nicht erledigen, soll ich einen Rückruf veranlassen?"
    ),
    # The callback request itself cannot be taken (the database is unavailable).
    "callback_unavailable": (
        "Entschuldigung, ich kann Ihren Rückrufwunsch gerade nicht aufnehmen. "
        "Bitte rufen Sie in ein paar Minuten noch einmal an."
    ),
    "options": "Zur Auswahl stehen {options}.",
    "options_one": "Zur Auswahl steht {options}.",
    "repeat": "Können Sie mir das bitte noch einmal sagen?",
}

# Placeholders: {verb} "stornieren", {participle} "storniert", {noun} "Stornierung", {fee}.
_ACTION_WORDS: Final[Mapping[str, Mapping[str, str]]] = {
    "cancel": {"verb": "stornieren", "participle": "storniert", "noun": "Stornierung"},
    "reschedule": {"verb": "verschieben", "participle": "verschoben", "noun": "Verschiebung"},
}
_CALLBACK_OFFER: Final = " Soll ich einen Rückruf veranlassen?"
_REASON: Final[Mapping[str, str]] = {
    "ok": "Sie können den Termin kostenlos {verb}.",
    "late_fee": (
        "Für eine so kurzfristige {noun} fällt eine Gebühr{fee} an. "
        "Möchten Sie den Termin trotzdem {verb}?"
    ),
    "deadline_passed": (
        "Leider kann ich den Termin so kurzfristig nicht mehr {verb}." + _CALLBACK_OFFER
    ),
    "appointment_in_past": (
        "Dieser Termin liegt bereits in der Vergangenheit und kann nicht mehr {participle} werden."
    ),
    "not_modifiable": (
        "Dieser Termin ist nicht mehr aktiv und kann daher nicht {participle} werden."
    ),
    "quota_exceeded": (
        "Sie haben in letzter Zeit bereits mehrere Termine geändert, deshalb kann ich diesen "
        "Termin leider nicht {verb}." + _CALLBACK_OFFER
    ),
    "max_reschedules_reached": (
        "Dieser Termin kann leider nicht noch einmal verschoben werden, weil die Höchstzahl an "
        "Verschiebungen erreicht ist." + _CALLBACK_OFFER
    ),
}
_REASON_DEADLINE: Final[Mapping[str, str]] = {
    "ok": "Sie können den Termin bis {deadline} kostenlos {verb}.",
    "late_fee": (
        "Eine kostenlose {noun} war nur bis {deadline} möglich, jetzt fällt eine Gebühr{fee} an. "
        "Möchten Sie den Termin trotzdem {verb}?"
    ),
    "deadline_passed": (
        "Leider kann ich den Termin nicht mehr {verb}, das war nur bis {deadline} möglich."
        + _CALLBACK_OFFER
    ),
}
_REASON_FALLBACK: Final = "Diesen Termin kann ich leider nicht {verb}." + _CALLBACK_OFFER

# (what went wrong, what the agent asks); either part may be empty.
_ASK: Final[Mapping[str, tuple[str, str]]] = {
    "missing_service": ("", "Für welche Leistung möchten Sie einen Termin?"),
    "unknown_service": (
        "Diese Leistung habe ich leider nicht gefunden.",
        "Welche Leistung möchten Sie?",
    ),
    "unknown_staff": (
        "Diesen Namen habe ich in unserem Team leider nicht gefunden.",
        "Bei wem möchten Sie den Termin?",
    ),
    "unknown_branch": (
        "Diese Filiale habe ich leider nicht gefunden.",
        "In welcher Filiale möchten Sie den Termin?",
    ),
    "missing_date": ("", "An welchem Tag möchten Sie den Termin?"),
    "invalid_date": (
        "Das Datum habe ich leider nicht verstanden.",
        "An welchem Tag möchten Sie den Termin?",
    ),
    "missing_time": ("", "Um wie viel Uhr möchten Sie den Termin?"),
    "invalid_time": (
        "Die Uhrzeit habe ich leider nicht verstanden.",
        "Um wie viel Uhr möchten Sie den Termin?",
    ),
    "date_in_past": (
        "Dieser Zeitpunkt liegt leider schon in der Vergangenheit.",
        "Für welchen Tag darf ich nachsehen?",
    ),
    "beyond_booking_window": (
        "So weit im Voraus kann ich leider noch keine Termine vergeben.",
        "Für welchen früheren Tag darf ich nachsehen?",
    ),
    "outside_opening_hours": (
        "Zu dieser Zeit haben wir leider geschlossen.",
        "Wann würde es Ihnen sonst passen?",
    ),
    "missing_customer_name": ("", "Auf welchen Namen darf ich den Termin eintragen?"),
    "missing_customer_phone": ("", "Unter welcher Telefonnummer können wir Sie erreichen?"),
    "missing_appointment": (
        "",
        "Um welchen Termin geht es? Können Sie mir bitte das Datum und die Uhrzeit nennen?",
    ),
    "ambiguous": (
        "Das habe ich leider nicht eindeutig verstanden.",
        "Können Sie es bitte genauer sagen?",
    ),
}
_ASK_LAST_DAY: Final = "Termine sind bis {last_day} möglich."
_ASK_AMBIGUOUS: Final = "Meinten Sie {options}?"


def _zone(tz: TzLike) -> tzinfo:
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def _local(instant: datetime, tz: TzLike) -> datetime:
    # A naive instant is taken as UTC: that is how the database hands them back.
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(_zone(tz))


def spoken_date(d: date, with_year: bool = False) -> str:
    """'Dienstag, 24. November' (with_year: 'Dienstag, 24. November 2026')."""
    text = f"{WEEKDAYS[d.weekday()]}, {d.day}. {MONTHS[d.month - 1]}"
    return f"{text} {d.year}" if with_year else text


def spoken_time(t: time) -> str:
    """'14:30 Uhr', 24-hour clock."""
    return f"{t.hour:02d}:{t.minute:02d} Uhr"


def spoken_datetime(instant_utc: datetime, tz_name: TzLike, with_year: bool = False) -> str:
    """'Dienstag, 24. November um 14:30 Uhr' in the zone's wall-clock time."""
    local = _local(instant_utc, tz_name)
    return f"{spoken_date(local.date(), with_year)} um {spoken_time(local.time())}"


def spoken_money(amount: Decimal | int, currency: str) -> str:
    """'1.234,50 Euro': German separators, two decimals (half up), the currency spelled out."""
    quantized = Decimal(amount).quantize(Decimal("0.01"), ROUND_HALF_UP)
    digits = f"{quantized:,.2f}".replace(",", "\0").replace(".", ",").replace("\0", ".")
    code = currency.strip().upper()
    return f"{digits} {CURRENCY_NAMES.get(code, code)}"


def spoken_list(items: Sequence[str], conjunction: str = "oder") -> str:
    """'A', 'A oder B', 'A, B oder C'."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


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
    return _TEXT["at_staff"].format(when=when, staff=staff) if staff else when


def _fee(fee: Decimal | None, currency: str) -> str:
    return _TEXT["fee"].format(fee=spoken_money(fee, currency)) if fee else ""


def _offer(slots: Sequence[SpokenSlot], tz: TzLike) -> tuple[date | None, list[str]]:
    """Phrases for slots: times only when all fall on one local day (returned), else full."""
    local = [(_local(start, tz), staff) for start, staff in map(_slot, slots)]
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
            return _TEXT["slots_one"].format(service=service_name, when=when)
        if day is not None:
            return _TEXT["slots_day"].format(
                service=service_name, day=spoken_date(day), slots=spoken_list(phrases)
            )
        return _TEXT["slots_many"].format(service=service_name, slots=spoken_list(phrases))

    if not slots:
        return _TEXT["slots_none"].format(service=service_name)
    return _fit(render, slots[:MAX_SPOKEN_SLOTS])


def no_slots(service_name: str, day: date) -> str:
    """Nothing free for the service on that day; offer to look at another day."""
    return _TEXT["no_slots"].format(service=service_name, day=spoken_date(day))


def booked(
    service_name: str,
    start: datetime,
    staff_name: str | None,
    tz_name: TzLike,
    reference: str | None = None,
) -> str:
    """Confirm a booking; the reference spelled for text-to-speech ("K 7 M 2 P 9")."""
    when = _with_staff(spoken_datetime(start, tz_name), staff_name)
    text = _TEXT["booked"].format(service=service_name, when=when)
    if reference:
        text += _TEXT["reference"].format(reference=" ".join(reference))
    return text


def identify_by_reference() -> str:
    """No caller ID: ask for the booking reference and the name on the booking."""
    return _TEXT["identify"]


def not_identified() -> str:
    """No caller ID and the reference and name do not name an appointment."""
    return _TEXT["not_identified"]


def tries_exhausted() -> str:
    """No caller ID and the tries of this call or reference are spent."""
    return _TEXT["tries_exhausted"]


def slot_taken_with_alternatives(
    start: datetime, alternatives: Sequence[SpokenSlot], tz_name: TzLike
) -> str:
    """The requested slot is gone; offer the alternatives (if any) and ask which one suits."""
    head = _TEXT["taken"].format(when=spoken_datetime(start, tz_name))
    requested_day = _local(start, tz_name).date()

    def day_phrase(day: date) -> str:
        if day == requested_day:
            return _TEXT["same_day"]
        return _TEXT["on_day"].format(day=spoken_date(day))

    def render(shown: Sequence[SpokenSlot]) -> str:
        day, phrases = _offer(shown, tz_name)
        if day is not None and len(shown) == 1:
            return head + _TEXT["alt_one"].format(day=day_phrase(day), when=phrases[0])
        if day is not None:
            return head + _TEXT["alt_day"].format(day=day_phrase(day), slots=spoken_list(phrases))
        return head + _TEXT["alt_many"].format(slots=spoken_list(phrases))

    if not alternatives:
        return head + _TEXT["alt_none"]
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
        text = _TEXT["cancelled_service"].format(service=service_name, when=when)
    else:
        text = _TEXT["cancelled"].format(when=when)
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
    words = dict(_ACTION_WORDS[action])
    words["fee"] = f" von {spoken_money(fee, currency)}" if fee else ""
    if deadline is not None and tz_name is not None and reason_code in _REASON_DEADLINE:
        words["deadline"] = spoken_datetime(deadline, tz_name)
        return _REASON_DEADLINE[reason_code].format(**words)
    return _REASON.get(reason_code, _REASON_FALLBACK).format(**words)


def rescheduled(
    old: datetime,
    new: datetime,
    tz_name: TzLike,
    fee: Decimal | None = None,
    *,
    currency: str = "EUR",
) -> str:
    """Confirm a reschedule, naming the fee when one applies."""
    old_local, new_local = _local(old, tz_name), _local(new, tz_name)
    if old_local.date() == new_local.date():
        text = _TEXT["rescheduled_day"].format(
            day=spoken_date(old_local.date()),
            old=spoken_time(old_local.time()),
            new=spoken_time(new_local.time()),
        )
    else:
        text = _TEXT["rescheduled"].format(
            old=spoken_datetime(old, tz_name), new=spoken_datetime(new, tz_name)
        )
    return text + _fee(fee, currency)


def appointment_not_found() -> str:
    """No appointment of the caller matches; ask for date and time."""
    return _TEXT["not_found"]


def no_appointments_found() -> str:
    """The caller has no upcoming appointments."""
    return _TEXT["none_found"]


def _count(n: int) -> str:
    return _COUNT_WORDS[n] if n < len(_COUNT_WORDS) else str(n)


def appointments_list(
    appointments: Sequence[tuple[datetime, str, str | None]], tz_name: TzLike
) -> str:
    """Read out the caller's appointments (start, service, staff), upcoming first, as given."""
    total = len(appointments)

    def render(shown: Sequence[tuple[datetime, str, str | None]]) -> str:
        items = spoken_list(
            [
                _TEXT["appointment"].format(
                    service=service, when=_with_staff(spoken_datetime(start, tz_name), staff)
                )
                for start, service, staff in shown
            ],
            "und",
        )
        if total == 1:
            return _TEXT["list_one"].format(items=items)
        if len(shown) == total:
            return _TEXT["list_all"].format(count=_count(total), items=items)
        if len(shown) == 1:
            return _TEXT["list_next_one"].format(count=_count(total), items=items)
        return _TEXT["list_next"].format(count=_count(total), shown=_count(len(shown)), items=items)

    if not appointments:
        return no_appointments_found()
    return _fit(render, appointments[:MAX_SPOKEN_APPOINTMENTS])


def callback_created(preferred_time: str | None = None) -> str:
    """Confirm a callback request, repeating the caller's preferred time if given."""
    wish = (preferred_time or "").strip()
    if wish:
        text = _TEXT["callback_time"].format(time=wish)
        if len(text) < MAX_MESSAGE_CHARS:
            return text
    return _TEXT["callback"]


def needs_callback() -> str:
    """The request needs a human; offer a callback."""
    return _TEXT["needs_callback"]


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
    lead, question = _ASK.get(field, ("", _TEXT["repeat"]))
    options = list(candidates[:MAX_SPOKEN_OPTIONS])

    def render(shown: Sequence[str]) -> str:
        if field == "ambiguous" and shown:
            return _ASK_AMBIGUOUS.format(options=spoken_list(shown))
        parts = [lead]
        if field == "beyond_booking_window" and last_day is not None:
            parts.append(_ASK_LAST_DAY.format(last_day=spoken_date(last_day)))
        if field.startswith("unknown_") and shown:
            key = "options_one" if len(shown) == 1 else "options"
            parts.append(_TEXT[key].format(options=spoken_list(shown, "und")))
        parts.append(question)
        return " ".join(part for part in parts if part)

    return _fit(render, options) if options else render(())


def rate_limited() -> str:
    """Too many requests right now: ask for a moment."""
    return _TEXT["rate_limited"]


def service_unavailable() -> str:
    """The backend cannot do it right now: offer a callback."""
    return _TEXT["unavailable"]


def callback_unavailable() -> str:
    """A callback request cannot be taken right now: ask the caller to call again."""
    return _TEXT["callback_unavailable"]
