"""Every sentence the phone agent speaks, as templates (German), for review in one place.

`speech` chooses a template and fills it; nothing here computes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, TypeAlias, get_args

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

TEXT: Final[Mapping[str, str]] = {
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
ACTION_WORDS: Final[Mapping[str, Mapping[str, str]]] = {
    "cancel": {"verb": "stornieren", "participle": "storniert", "noun": "Stornierung"},
    "reschedule": {"verb": "verschieben", "participle": "verschoben", "noun": "Verschiebung"},
}
CALLBACK_OFFER: Final = " Soll ich einen Rückruf veranlassen?"
REASON: Final[Mapping[str, str]] = {
    "ok": "Sie können den Termin kostenlos {verb}.",
    "late_fee": (
        "Für eine so kurzfristige {noun} fällt eine Gebühr{fee} an. "
        "Möchten Sie den Termin trotzdem {verb}?"
    ),
    "deadline_passed": (
        "Leider kann ich den Termin so kurzfristig nicht mehr {verb}." + CALLBACK_OFFER
    ),
    "appointment_in_past": (
        "Dieser Termin liegt bereits in der Vergangenheit und kann nicht mehr {participle} werden."
    ),
    "not_modifiable": (
        "Dieser Termin ist nicht mehr aktiv und kann daher nicht {participle} werden."
    ),
    "quota_exceeded": (
        "Sie haben in letzter Zeit bereits mehrere Termine geändert, deshalb kann ich diesen "
        "Termin leider nicht {verb}." + CALLBACK_OFFER
    ),
    "max_reschedules_reached": (
        "Dieser Termin kann leider nicht noch einmal verschoben werden, weil die Höchstzahl an "
        "Verschiebungen erreicht ist." + CALLBACK_OFFER
    ),
}
REASON_DEADLINE: Final[Mapping[str, str]] = {
    "ok": "Sie können den Termin bis {deadline} kostenlos {verb}.",
    "late_fee": (
        "Eine kostenlose {noun} war nur bis {deadline} möglich, jetzt fällt eine Gebühr{fee} an. "
        "Möchten Sie den Termin trotzdem {verb}?"
    ),
    "deadline_passed": (
        "Leider kann ich den Termin nicht mehr {verb}, das war nur bis {deadline} möglich."
        + CALLBACK_OFFER
    ),
}
REASON_FALLBACK: Final = "Diesen Termin kann ich leider nicht {verb}." + CALLBACK_OFFER

# (what went wrong, what the agent asks); either part may be empty.
ASK: Final[Mapping[str, tuple[str, str]]] = {
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
ASK_LAST_DAY: Final = "Termine sind bis {last_day} möglich."
ASK_AMBIGUOUS: Final = "Meinten Sie {options}?"
