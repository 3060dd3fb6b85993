"""Text blocks the built-in templates share, per language: written once as `<<name>>` in
the texts and filled in at import (`defaults`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

BLOCKS: Final[Mapping[str, Mapping[str, str]]] = {
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
