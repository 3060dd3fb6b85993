"""The built-in templates: 13 event types x (email, sms, whatsapp) x (de, en).

Customer-facing for the booking, reminder and policy events; staff-facing for the calendar
sync failure and the callback events. Each text is Jinja2 (rendered in the sandbox of
`services.notifications.templates`, where a line of only block tags leaves no trace) over
plain strings already formatted for the language, and guards every value that may be
missing. SMS texts stay in the GSM-7 alphabet (no dashes or emoji), well under 320 characters.
Shared blocks are written once as `<<name>>` and filled in at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from services.notifications.catalog import (
    APPOINTMENT_EVENTS,
    CALLBACK_EVENTS,
    CHANNELS,
    EVENT_TYPES,
    NOTIFICATION_LANGUAGES,
)
from shared.errors import InvalidInput

__all__ = [
    "APPOINTMENT_EVENTS",
    "CALLBACK_EVENTS",
    "DEFAULTS",
    "EVENT_TYPES",
    "check_target",
    "default_template",
]

LANGUAGES: Final = NOTIFICATION_LANGUAGES

Template = tuple[str | None, str]  # (subject, body); the subject is None for sms and whatsapp

_BLOCKS: Final[Mapping[str, Mapping[str, str]]] = {
    "de": {
        "hello": "Hallo{% if customer_name %} {{ customer_name }}{% endif %},",
        "details": (
            "Wann: {{ start }}\n"
            "Was: {{ service }}{% if duration_minutes %} ({{ duration_minutes }} Min.){% endif %}\n"
            "{% if staff %}\nBei: {{ staff }}\n{% endif %}\n"
            "Wo: {{ branch }}{% if branch_address %}, {{ branch_address }}{% endif %}\n"
        ),
        "price": "{% if price %}\nPreis: {{ price }}\n{% endif %}\n",
        # The booking reference: what a caller without caller ID names on the phone.
        "ref": "{% if reference %}\nBuchungsnummer: {{ reference }}\n{% endif %}\n",
        "ref_sms": "{% if reference %} Buchungsnr.: {{ reference }}.{% endif %}",
        "ref_wa": "{% if reference %}\nBuchungsnummer: {{ reference }}{% endif %}",
        "phone": "{% if branch_phone %}\nBei Fragen erreichen Sie uns unter {{ branch_phone }}.\n"
        "{% endif %}\n",
        "sign": "Viele Grüße\n{{ company }}",
        "where": "Ort: {{ branch }}{% if branch_address %}, {{ branch_address }}{% endif %}.",
        "wa": "*{{ service }}*{% if staff %} bei {{ staff }}{% endif %}\n{{ start }}\n"
        "{{ branch }}{% if branch_address %}, {{ branch_address }}{% endif %}",
        "callback": (
            "{% if customer_name %}\nName: {{ customer_name }}\n{% endif %}\n"
            "Telefon: {{ callback_phone }}\n"
            "{% if callback_reason %}\nAnliegen: {{ callback_reason }}\n{% endif %}\n"
            "{% if preferred_time %}\nWunschzeit: {{ preferred_time }}\n{% endif %}\n"
            "Filiale: {{ branch }}\n"
            "{% if due %}\nZurückrufen bis: {{ due }}\n{% endif %}\n"
            "{% if assigned_to %}\nZuständig: {{ assigned_to }}\n{% endif %}\n"
            "{% if callback_id %}\nRückruf-ID: {{ callback_id }}\n{% endif %}\n"
        ),
        "caller": "{% if customer_name %}{{ customer_name }}, {% endif %}{{ callback_phone }}"
        "{% if callback_reason %} ({{ callback_reason|truncate(80) }}){% endif %}",
        "system": "Automatische Nachricht des Terminsystems von {{ company }}.",
    },
    "en": {
        "hello": "Hello{% if customer_name %} {{ customer_name }}{% endif %},",
        "details": (
            "When: {{ start }}\n"
            "What: {{ service }}{% if duration_minutes %} ({{ duration_minutes }} min){% endif %}\n"
            "{% if staff %}\nWith: {{ staff }}\n{% endif %}\n"
            "Where: {{ branch }}{% if branch_address %}, {{ branch_address }}{% endif %}\n"
        ),
        "price": "{% if price %}\nPrice: {{ price }}\n{% endif %}\n",
        "ref": "{% if reference %}\nBooking reference: {{ reference }}\n{% endif %}\n",
        "ref_sms": "{% if reference %} Ref.: {{ reference }}.{% endif %}",
        "ref_wa": "{% if reference %}\nBooking reference: {{ reference }}{% endif %}",
        "phone": "{% if branch_phone %}\nIf you have any questions, call us on "
        "{{ branch_phone }}.\n{% endif %}\n",
        "sign": "Kind regards,\n{{ company }}",
        "where": "Location: {{ branch }}{% if branch_address %}, {{ branch_address }}{% endif %}.",
        "wa": "*{{ service }}*{% if staff %} with {{ staff }}{% endif %}\n{{ start }}\n"
        "{{ branch }}{% if branch_address %}, {{ branch_address }}{% endif %}",
        "callback": (
            "{% if customer_name %}\nName: {{ customer_name }}\n{% endif %}\n"
            "Phone: {{ callback_phone }}\n"
            "{% if callback_reason %}\nReason: {{ callback_reason }}\n{% endif %}\n"
            "{% if preferred_time %}\nPreferred time: {{ preferred_time }}\n{% endif %}\n"
            "Branch: {{ branch }}\n"
            "{% if due %}\nCall back by: {{ due }}\n{% endif %}\n"
            "{% if assigned_to %}\nAssigned to: {{ assigned_to }}\n{% endif %}\n"
            "{% if callback_id %}\nCallback ID: {{ callback_id }}\n{% endif %}\n"
        ),
        "caller": "{% if customer_name %}{{ customer_name }}, {% endif %}{{ callback_phone }}"
        "{% if callback_reason %} ({{ callback_reason|truncate(80) }}){% endif %}",
        "system": "Automatic message from the {{ company }} booking system.",
    },
}

# event -> language -> (email subject, email body, sms body, whatsapp body)
_TEXTS: Final[Mapping[str, Mapping[str, tuple[str, str, str, str]]]] = {
    "booking_confirmed": {
        "de": (
            "Terminbestätigung: {{ service }} am {{ date }} um {{ time }} Uhr",
            "<<hello>>\n\nvielen Dank für Ihre Buchung bei {{ company }}. Ihr Termin ist "
            "bestätigt:\n\n<<details>><<price>><<ref>>\nFalls Sie den Termin nicht wahrnehmen "
            "können, sagen Sie bitte rechtzeitig ab.\n<<phone>>\nWir freuen uns auf Sie!\n\n"
            "<<sign>>",
            "{{ company }}: Ihr Termin am {{ date }} um {{ time }} Uhr ist bestätigt "
            "({{ service }}{% if staff %} bei {{ staff }}{% endif %}). <<where>><<ref_sms>> "
            "Bitte sagen Sie rechtzeitig ab, falls Sie nicht kommen können"
            "{% if branch_phone %}: {{ branch_phone }}{% endif %}.",
            "<<hello>> Ihr Termin bei {{ company }} ist bestätigt.\n\n<<wa>><<ref_wa>>\n\n"
            "Falls Sie nicht kommen können, sagen Sie bitte rechtzeitig ab.",
        ),
        "en": (
            "Booking confirmed: {{ service }} on {{ date }} at {{ time }}",
            "<<hello>>\n\nThank you for booking with {{ company }}. Your appointment is "
            "confirmed:\n\n<<details>><<price>><<ref>>\nIf you can't make it, please let us "
            "know in good time.\n<<phone>>\nWe look forward to seeing you!\n\n<<sign>>",
            "{{ company }}: Your appointment on {{ date }} at {{ time }} is confirmed "
            "({{ service }}{% if staff %} with {{ staff }}{% endif %}). <<where>><<ref_sms>> "
            "If you can't make it, please let us know in good time"
            "{% if branch_phone %}: {{ branch_phone }}{% endif %}.",
            "<<hello>> your appointment with {{ company }} is confirmed.\n\n<<wa>><<ref_wa>>"
            "\n\nIf you can't make it, please let us know in good time.",
        ),
    },
    "booking_rescheduled": {
        "de": (
            "Termin verschoben: neu am {{ date }} um {{ time }} Uhr",
            "<<hello>>\n\nIhr Termin bei {{ company }} wurde verschoben"
            "{% if old_start %} (bisher: {{ old_start }}){% endif %}. Ihr neuer Termin:\n\n"
            "<<details>><<price>><<ref>>\n<<phone>>\nWir freuen uns auf Sie!\n\n<<sign>>",
            "{{ company }}: Ihr Termin wurde verschoben. Neu: {{ date }} um {{ time }} Uhr "
            "({{ service }}{% if staff %} bei {{ staff }}{% endif %}). <<where>><<ref_sms>>"
            "{% if branch_phone %} Fragen? {{ branch_phone }}{% endif %}",
            "<<hello>> Ihr Termin bei {{ company }} wurde verschoben. Ihr neuer Termin:\n\n"
            "<<wa>><<ref_wa>>{% if old_start %}\n\n(bisher: {{ old_start }}){% endif %}",
        ),
        "en": (
            "Appointment moved: now on {{ date }} at {{ time }}",
            "<<hello>>\n\nYour appointment with {{ company }} has been moved"
            "{% if old_start %} (previously: {{ old_start }}){% endif %}. Your new "
            "appointment:\n\n<<details>><<price>><<ref>>\n<<phone>>\nWe look forward to seeing "
            "you!\n\n<<sign>>",
            "{{ company }}: Your appointment has been moved. New time: {{ date }} at {{ time }} "
            "({{ service }}{% if staff %} with {{ staff }}{% endif %}). <<where>><<ref_sms>>"
            "{% if branch_phone %} Questions? {{ branch_phone }}{% endif %}",
            "<<hello>> your appointment with {{ company }} has been moved. Your new "
            "appointment:\n\n<<wa>><<ref_wa>>"
            "{% if old_start %}\n\n(previously: {{ old_start }}){% endif %}",
        ),
    },
    "booking_cancelled": {
        "de": (
            "Termin storniert: {{ service }} am {{ date }} um {{ time }} Uhr",
            "<<hello>>\n\nIhr Termin bei {{ company }} wurde storniert:\n\n<<details>>"
            "{% if reason %}\nGrund: {{ reason }}\n{% endif %}\n"
            "{% if fee %}\n\nGemäß unseren Stornobedingungen fällt eine Stornogebühr von {{ fee }} "
            "an.\n{% endif %}\n\nGerne vereinbaren wir einen neuen Termin mit Ihnen.\n<<phone>>\n"
            "<<sign>>",
            "{{ company }}: Ihr Termin am {{ date }} um {{ time }} Uhr ({{ service }}, "
            "{{ branch }}) wurde storniert.{% if fee %} Stornogebühr: {{ fee }}.{% endif %}"
            "{% if branch_phone %} Neuer Termin: {{ branch_phone }}{% endif %}",
            "<<hello>> Ihr Termin bei {{ company }} wurde storniert:\n\n<<wa>>"
            "{% if fee %}\n\nGemäß unseren Stornobedingungen fällt eine Stornogebühr von "
            "{{ fee }} an.{% endif %}\n\nGerne vereinbaren wir einen neuen Termin mit Ihnen.",
        ),
        "en": (
            "Appointment cancelled: {{ service }} on {{ date }} at {{ time }}",
            "<<hello>>\n\nYour appointment with {{ company }} has been cancelled:\n\n<<details>>"
            "{% if reason %}\nReason: {{ reason }}\n{% endif %}\n"
            "{% if fee %}\n\nIn line with our cancellation policy, a cancellation fee of {{ fee }} "
            "applies.\n{% endif %}\n\nWe would be happy to book a new appointment for you.\n"
            "<<phone>>\n<<sign>>",
            "{{ company }}: Your appointment on {{ date }} at {{ time }} ({{ service }}, "
            "{{ branch }}) has been cancelled.{% if fee %} Cancellation fee: {{ fee }}.{% endif %}"
            "{% if branch_phone %} To rebook: {{ branch_phone }}{% endif %}",
            "<<hello>> your appointment with {{ company }} has been cancelled:\n\n<<wa>>"
            "{% if fee %}\n\nIn line with our cancellation policy, a cancellation fee of "
            "{{ fee }} applies.{% endif %}\n\nWe would be happy to book a new appointment for you.",
        ),
    },
    "booking_reminder_24h": {
        "de": (
            "Erinnerung: Ihr Termin am {{ date }} um {{ time }} Uhr",
            "<<hello>>\n\nwir möchten Sie an Ihren Termin bei {{ company }} erinnern:\n\n"
            "<<details>><<price>>\nFalls Sie nicht kommen können, sagen Sie bitte so bald wie "
            "möglich ab.\n<<phone>>\nBis bald!\n\n<<sign>>",
            "{{ company }}: Erinnerung an Ihren Termin am {{ date }} um {{ time }} Uhr "
            "({{ service }}{% if staff %} bei {{ staff }}{% endif %}). <<where>> Absagen bitte "
            "so bald wie möglich{% if branch_phone %} unter {{ branch_phone }}{% endif %}.",
            "<<hello>> wir erinnern Sie an Ihren Termin bei {{ company }}:\n\n<<wa>>\n\n"
            "Falls Sie nicht kommen können, sagen Sie bitte so bald wie möglich ab.",
        ),
        "en": (
            "Reminder: your appointment on {{ date }} at {{ time }}",
            "<<hello>>\n\nThis is a reminder of your appointment with {{ company }}:\n\n"
            "<<details>><<price>>\nIf you can't make it, please let us know as soon as "
            "possible.\n<<phone>>\nSee you soon!\n\n<<sign>>",
            "{{ company }}: Reminder of your appointment on {{ date }} at {{ time }} "
            "({{ service }}{% if staff %} with {{ staff }}{% endif %}). <<where>> If you can't "
            "make it, please cancel as soon as possible"
            "{% if branch_phone %}: {{ branch_phone }}{% endif %}.",
            "<<hello>> a reminder of your appointment with {{ company }}:\n\n<<wa>>\n\n"
            "If you can't make it, please let us know as soon as possible.",
        ),
    },
    "booking_reminder_2h": {
        "de": (
            "Bis gleich: Ihr Termin um {{ time }} Uhr",
            "<<hello>>\n\nIhr Termin bei {{ company }} beginnt bald:\n\n<<details>>\n<<phone>>\n"
            "Wir freuen uns auf Sie!\n\n<<sign>>",
            "{{ company }}: Ihr Termin am {{ date }} beginnt um {{ time }} Uhr ({{ service }}"
            "{% if staff %} bei {{ staff }}{% endif %}). <<where>> Bis gleich!",
            "<<hello>> Ihr Termin bei {{ company }} beginnt bald:\n\n<<wa>>\n\nBis gleich!",
        ),
        "en": (
            "See you soon: your appointment at {{ time }}",
            "<<hello>>\n\nYour appointment with {{ company }} is coming up soon:\n\n<<details>>\n"
            "<<phone>>\nWe look forward to seeing you!\n\n<<sign>>",
            "{{ company }}: Your appointment on {{ date }} starts at {{ time }} ({{ service }}"
            "{% if staff %} with {{ staff }}{% endif %}). <<where>> See you soon!",
            "<<hello>> your appointment with {{ company }} is coming up soon:\n\n<<wa>>\n\n"
            "See you soon!",
        ),
    },
    "booking_no_show": {
        "de": (
            "Wir haben Sie vermisst: Ihr Termin am {{ date }} um {{ time }} Uhr",
            "<<hello>>\n\nleider konnten wir Sie zu Ihrem Termin bei {{ company }} nicht "
            "begrüßen:\n\n<<details>>\nWenn Sie einen Termin nicht wahrnehmen können, sagen Sie "
            "bitte rechtzeitig ab. So können wir ihn an andere Kundinnen und Kunden vergeben.\n\n"
            "Gerne vereinbaren wir einen neuen Termin mit Ihnen.\n<<phone>>\n<<sign>>",
            "{{ company }}: Wir haben Sie vermisst. Ihr Termin am {{ date }} um {{ time }} "
            "Uhr ({{ service }}, {{ branch }}) wurde nicht wahrgenommen. Bitte sagen Sie künftig "
            "rechtzeitig ab.{% if branch_phone %} Neuer Termin: {{ branch_phone }}{% endif %}",
            "<<hello>> leider konnten wir Sie zu Ihrem Termin bei {{ company }} nicht "
            "begrüßen:\n\n<<wa>>\n\nBitte sagen Sie künftig rechtzeitig ab. Gerne vereinbaren "
            "wir einen neuen Termin mit Ihnen.",
        ),
        "en": (
            "We missed you: your appointment on {{ date }} at {{ time }}",
            "<<hello>>\n\nUnfortunately we missed you at your appointment with {{ company }}:\n\n"
            "<<details>>\nIf you can't make an appointment, please cancel in good time so that we "
            "can offer it to other customers.\n\nWe would be happy to book a new appointment for "
            "you.\n<<phone>>\n<<sign>>",
            "{{ company }}: We missed you. Your appointment on {{ date }} at {{ time }} "
            "({{ service }}, {{ branch }}) was not attended. Please cancel in good time in future."
            "{% if branch_phone %} To rebook: {{ branch_phone }}{% endif %}",
            "<<hello>> unfortunately we missed you at your appointment with {{ company }}:\n\n"
            "<<wa>>\n\nPlease cancel in good time in future. We would be happy to book a new "
            "appointment for you.",
        ),
    },
    "booking_sync_failed": {
        "de": (
            "Kalender-Synchronisierung fehlgeschlagen: Termin am {{ date }} um {{ time }} Uhr",
            "Der folgende Termin konnte nicht mit dem Kalender synchronisiert werden:\n\n"
            "<<details>>Kunde/Kundin: {{ customer_name }}\nTermin-ID: {{ appointment_id }}\n"
            "{% if error %}\nFehler: {{ error }}\n{% endif %}\n\nBitte prüfen Sie den Termin "
            "im Kalender und tragen Sie ihn bei Bedarf von Hand ein.\n\n<<system>>",
            "{{ company }}: Kalender-Sync fehlgeschlagen für den Termin am {{ date }} um "
            "{{ time }} Uhr ({{ service }}{% if staff %} bei {{ staff }}{% endif %}, {{ branch }},"
            " {{ customer_name }}). Termin-ID {{ appointment_id }}.{% if error %} Fehler: "
            "{{ error|truncate(60) }}.{% endif %} Bitte im Kalender prüfen.",
            "*Kalender-Synchronisierung fehlgeschlagen*\n\n<<wa>>\nKunde/Kundin: "
            "{{ customer_name }}\nTermin-ID: {{ appointment_id }}{% if error %}\nFehler: "
            "{{ error|truncate(200) }}{% endif %}\n\nBitte prüfen Sie den Termin im Kalender.",
        ),
        "en": (
            "Calendar sync failed: appointment on {{ date }} at {{ time }}",
            "The following appointment could not be synchronised with the calendar:\n\n"
            "<<details>>Customer: {{ customer_name }}\nAppointment ID: {{ appointment_id }}\n"
            "{% if error %}\nError: {{ error }}\n{% endif %}\n\nPlease check the appointment in "
            "the calendar and add it by hand if necessary.\n\n<<system>>",
            "{{ company }}: Calendar sync failed for the appointment on {{ date }} at {{ time }} "
            "({{ service }}{% if staff %} with {{ staff }}{% endif %}, {{ branch }}, "
            "{{ customer_name }}). Appointment ID {{ appointment_id }}.{% if error %} Error: "
            "{{ error|truncate(60) }}.{% endif %} Please check the calendar.",
            "*Calendar sync failed*\n\n<<wa>>\nCustomer: {{ customer_name }}\nAppointment ID: "
            "{{ appointment_id }}{% if error %}\nError: {{ error|truncate(200) }}{% endif %}\n\n"
            "Please check the appointment in the calendar.",
        ),
    },
    "cancellation_fee_charged": {
        # "Short notice" only with the deadline that was missed (ADR 0016): a fee charged
        # under a ladder without a free-change deadline is not called late.
        "de": (
            "Stornogebühr für Ihren Termin am {{ date }}",
            "<<hello>>\n\nfür die Absage Ihres Termins bei {{ company }} berechnen wir gemäß "
            "unseren Stornobedingungen eine Gebühr{% if fee %} von {{ fee }}{% endif %}."
            "{% if deadline %} Kostenfrei absagen konnten Sie bis {{ deadline }}; Ihre Absage "
            "kam nach dieser Frist.{% endif %}\n\n<<details>>\n<<phone>>\n<<sign>>",
            "{{ company }}: Für die Absage Ihres Termins am {{ date }} um {{ time }} Uhr "
            "({{ service }}, {{ branch }}) berechnen wir gemäß unseren Stornobedingungen eine "
            "Gebühr{% if fee %} von {{ fee }}{% endif %}."
            "{% if deadline %} Kostenfrei absagen konnten Sie bis {{ deadline }}.{% endif %}"
            "{% if branch_phone %} Fragen? {{ branch_phone }}{% endif %}",
            "<<hello>> für die Absage Ihres Termins bei {{ company }} berechnen wir gemäß "
            "unseren Stornobedingungen eine Gebühr{% if fee %} von {{ fee }}{% endif %}."
            "{% if deadline %} Kostenfrei absagen konnten Sie bis {{ deadline }}.{% endif %}"
            "\n\n<<wa>>",
        ),
        "en": (
            "Cancellation fee for your appointment on {{ date }}",
            "<<hello>>\n\nFor the cancellation of your appointment with {{ company }} we are "
            "charging a fee{% if fee %} of {{ fee }}{% endif %} in line with our cancellation "
            "policy.{% if deadline %} Free cancellation was possible until {{ deadline }}; your "
            "cancellation came after that.{% endif %}\n\n<<details>>\n<<phone>>\n<<sign>>",
            "{{ company }}: For the cancellation of your appointment on {{ date }} at {{ time }} "
            "({{ service }}, {{ branch }}) we are charging a fee{% if fee %} of {{ fee }}"
            "{% endif %} in line with our cancellation policy."
            "{% if deadline %} It was free until {{ deadline }}.{% endif %}"
            "{% if branch_phone %} Questions? {{ branch_phone }}{% endif %}",
            "<<hello>> for the cancellation of your appointment with {{ company }} we are "
            "charging a fee{% if fee %} of {{ fee }}{% endif %} in line with our cancellation "
            "policy.{% if deadline %} Free cancellation was possible until {{ deadline }}."
            "{% endif %}\n\n<<wa>>",
        ),
    },
    "modification_quota_exceeded": {
        "de": (
            "Ihr Termin am {{ date }} kann nicht mehr geändert werden",
            "<<hello>>\n\n{% if quota_limit and window_days %}innerhalb von {{ window_days }} "
            "Tagen sind höchstens {{ quota_limit }} Terminänderungen möglich, und dieses Limit "
            "ist erreicht.{% else %}das Limit für Terminänderungen ist erreicht.{% endif %} Ihr "
            "Termin bleibt deshalb wie gebucht:\n\n<<details>>\nFür eine weitere Änderung melden "
            "Sie sich bitte direkt bei uns.\n<<phone>>\n<<sign>>",
            "{{ company }}: Das Limit für Terminänderungen ist erreicht"
            "{% if quota_limit and window_days %} ({{ quota_limit }} in {{ window_days }} Tagen)"
            "{% endif %}. Ihr Termin am {{ date }} um {{ time }} Uhr ({{ service }}, {{ branch }})"
            " bleibt wie gebucht.{% if branch_phone %} Fragen? {{ branch_phone }}{% endif %}",
            "<<hello>> das Limit für Terminänderungen ist erreicht"
            "{% if quota_limit and window_days %} ({{ quota_limit }} in {{ window_days }} Tagen)"
            "{% endif %}. Ihr Termin bleibt deshalb wie gebucht:\n\n<<wa>>",
        ),
        "en": (
            "Your appointment on {{ date }} can no longer be changed",
            "<<hello>>\n\n{% if quota_limit and window_days %}Appointments can be changed at most "
            "{{ quota_limit }} times within {{ window_days }} days, and this limit has been "
            "reached.{% else %}The limit for changing appointments has been reached.{% endif %} "
            "Your appointment therefore stays as booked:\n\n<<details>>\nTo make another change, "
            "please contact us directly.\n<<phone>>\n<<sign>>",
            "{{ company }}: The limit for changing appointments has been reached"
            "{% if quota_limit and window_days %} ({{ quota_limit }} in {{ window_days }} days)"
            "{% endif %}. Your appointment on {{ date }} at {{ time }} ({{ service }}, "
            "{{ branch }}) stays as booked.{% if branch_phone %} Questions? {{ branch_phone }}"
            "{% endif %}",
            "<<hello>> the limit for changing appointments has been reached"
            "{% if quota_limit and window_days %} ({{ quota_limit }} in {{ window_days }} days)"
            "{% endif %}. Your appointment therefore stays as booked:\n\n<<wa>>",
        ),
    },
    "callback_requested": {
        "de": (
            "Neue Rückrufbitte: {{ customer_name or callback_phone }}",
            "Es gibt eine neue Rückrufbitte:\n\n<<callback>>\nBitte rufen Sie "
            "{% if due %}bis {{ due }} {% endif %}zurück.\n\n<<system>>",
            "Rückrufbitte ({{ branch }}): <<caller>>."
            "{% if preferred_time %} Wunschzeit: {{ preferred_time|truncate(40) }}.{% endif %}"
            "{% if due %} Bitte bis {{ due }} zurückrufen.{% endif %}",
            "*Neue Rückrufbitte* ({{ branch }})\n\n<<caller>>"
            "{% if preferred_time %}\nWunschzeit: {{ preferred_time }}{% endif %}"
            "{% if due %}\nBitte bis {{ due }} zurückrufen.{% endif %}",
        ),
        "en": (
            "New callback request: {{ customer_name or callback_phone }}",
            "There is a new callback request:\n\n<<callback>>\nPlease call back"
            "{% if due %} by {{ due }}{% endif %}.\n\n<<system>>",
            "Callback request ({{ branch }}): <<caller>>."
            "{% if preferred_time %} Preferred time: {{ preferred_time|truncate(40) }}."
            "{% endif %}{% if due %} Please call back by {{ due }}.{% endif %}",
            "*New callback request* ({{ branch }})\n\n<<caller>>"
            "{% if preferred_time %}\nPreferred time: {{ preferred_time }}{% endif %}"
            "{% if due %}\nPlease call back by {{ due }}.{% endif %}",
        ),
    },
    "callback_assigned": {
        "de": (
            "Rückruf zugewiesen: {{ customer_name or callback_phone }}",
            "{% if assigned_to %}Hallo {{ assigned_to }},\n\n{% endif %}Ihnen wurde eine "
            "Rückrufbitte zugewiesen:\n\n<<callback>>\nBitte rufen Sie "
            "{% if due %}bis {{ due }} {% endif %}zurück.\n\n<<system>>",
            "Rückruf zugewiesen{% if assigned_to %} an {{ assigned_to }}{% endif %} "
            "({{ branch }}): <<caller>>.{% if due %} Bitte bis {{ due }} zurückrufen.{% endif %}",
            "*Rückruf zugewiesen*{% if assigned_to %} an {{ assigned_to }}{% endif %} "
            "({{ branch }})\n\n<<caller>>{% if due %}\nBitte bis {{ due }} zurückrufen.{% endif %}",
        ),
        "en": (
            "Callback assigned: {{ customer_name or callback_phone }}",
            "{% if assigned_to %}Hello {{ assigned_to }},\n\n{% endif %}A callback request has "
            "been assigned to you:\n\n<<callback>>\nPlease call back"
            "{% if due %} by {{ due }}{% endif %}.\n\n<<system>>",
            "Callback assigned{% if assigned_to %} to {{ assigned_to }}{% endif %} "
            "({{ branch }}): <<caller>>.{% if due %} Please call back by {{ due }}.{% endif %}",
            "*Callback assigned*{% if assigned_to %} to {{ assigned_to }}{% endif %} "
            "({{ branch }})\n\n<<caller>>{% if due %}\nPlease call back by {{ due }}.{% endif %}",
        ),
    },
    "callback_overdue": {
        "de": (
            "Rückruf überfällig: {{ customer_name or callback_phone }}",
            "Diese Rückrufbitte ist überfällig{% if due %} (fällig bis {{ due }})"
            "{% endif %}:\n\n<<callback>>\nBitte rufen Sie so schnell wie möglich zurück.\n\n"
            "<<system>>",
            "Rückruf überfällig ({{ branch }}): <<caller>>.{% if due %} Fällig war: {{ due }}."
            "{% endif %} Bitte sofort zurückrufen.",
            "*Rückruf überfällig* ({{ branch }})\n\n<<caller>>"
            "{% if due %}\nFällig war: {{ due }}{% endif %}\n\nBitte sofort zurückrufen.",
        ),
        "en": (
            "Callback overdue: {{ customer_name or callback_phone }}",
            "This callback request is overdue{% if due %} (due by {{ due }}){% endif %}:"
            "\n\n<<callback>>\nPlease call back as soon as possible.\n\n<<system>>",
            "Callback overdue ({{ branch }}): <<caller>>.{% if due %} It was due by {{ due }}."
            "{% endif %} Please call back now.",
            "*Callback overdue* ({{ branch }})\n\n<<caller>>"
            "{% if due %}\nDue by: {{ due }}{% endif %}\n\nPlease call back now.",
        ),
    },
    "callback_escalated": {
        "de": (
            "Rückruf eskaliert{% if escalation_level %} (Stufe {{ escalation_level }}){% endif %}"
            ": {{ customer_name or callback_phone }}",
            "Diese Rückrufbitte wurde nicht rechtzeitig bearbeitet und deshalb "
            "{% if escalation_level %}auf Stufe {{ escalation_level }} {% endif %}eskaliert:\n\n"
            "<<callback>>\nBitte kümmern Sie sich umgehend darum.\n\n<<system>>",
            "Rückruf eskaliert{% if escalation_level %} auf Stufe {{ escalation_level }}{% endif %}"
            " ({{ branch }}): <<caller>>.{% if due %} Fällig war: {{ due }}.{% endif %} Bitte "
            "umgehend zurückrufen.",
            "*Rückruf eskaliert{% if escalation_level %} auf Stufe {{ escalation_level }}"
            "{% endif %}* ({{ branch }})\n\n<<caller>>{% if due %}\nFällig war: {{ due }}"
            "{% endif %}\n\nBitte umgehend zurückrufen.",
        ),
        "en": (
            "Callback escalated{% if escalation_level %} (level {{ escalation_level }}){% endif %}"
            ": {{ customer_name or callback_phone }}",
            "This callback request was not handled in time and has been escalated"
            "{% if escalation_level %} to level {{ escalation_level }}{% endif %}:\n\n"
            "<<callback>>\nPlease deal with it straight away.\n\n<<system>>",
            "Callback escalated{% if escalation_level %} to level {{ escalation_level }}{% endif %}"
            " ({{ branch }}): <<caller>>.{% if due %} It was due by {{ due }}.{% endif %} Please "
            "call back now.",
            "*Callback escalated{% if escalation_level %} to level {{ escalation_level }}"
            "{% endif %}* ({{ branch }})\n\n<<caller>>{% if due %}\nDue by: {{ due }}{% endif %}"
            "\n\nPlease call back now.",
        ),
    },
}


def _fill(text: str, language: str) -> str:
    for name, block in _BLOCKS[language].items():
        text = text.replace(f"<<{name}>>", block)
    assert "<<" not in text, text
    return text


def _build() -> dict[tuple[str, str, str], Template]:
    built: dict[tuple[str, str, str], Template] = {}
    for event_type in EVENT_TYPES:
        for language in LANGUAGES:
            subject, email, sms, whatsapp = _TEXTS[event_type][language]
            built[event_type, "email", language] = (subject, _fill(email, language))
            built[event_type, "sms", language] = (None, _fill(sms, language))
            built[event_type, "whatsapp", language] = (None, _fill(whatsapp, language))
    return built


DEFAULTS: Final[Mapping[tuple[str, str, str], Template]] = _build()


def check_target(event_type: str, channel: str) -> None:
    """InvalidInput (naming the field) for an unknown event type or channel."""
    if event_type not in EVENT_TYPES:
        raise InvalidInput(f"Unknown event type '{event_type}'.", field="event_type")
    if channel not in CHANNELS:
        raise InvalidInput(f"Unknown channel '{channel}'.", field="channel")


def default_template(event_type: str, channel: str, language: str) -> Template:
    """The built-in (subject, body); a language without texts falls back to German."""
    check_target(event_type, channel)
    return DEFAULTS[event_type, channel, language if language in LANGUAGES else "de"]
