"""Built-in texts of the booking events: confirmed, rescheduled, cancelled, the two
reminders, no-show (customer-facing) and the calendar sync failure (staff-facing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

# event -> language -> (email subject, email body, sms body, whatsapp body)
BOOKING_TEXTS: Final[Mapping[str, Mapping[str, tuple[str, str, str, str]]]] = {
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
}
