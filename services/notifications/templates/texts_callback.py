"""Built-in texts of the callback events: requested, assigned, overdue, escalated
(staff-facing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

# event -> language -> (email subject, email body, sms body, whatsapp body)
CALLBACK_TEXTS: Final[Mapping[str, Mapping[str, tuple[str, str, str, str]]]] = {
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
