"""Built-in texts of the policy events: a cancellation fee charged, a modification quota
exceeded (customer-facing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

# event -> language -> (email subject, email body, sms body, whatsapp body)
POLICY_TEXTS: Final[Mapping[str, Mapping[str, tuple[str, str, str, str]]]] = {
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
}
