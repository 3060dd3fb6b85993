"""Customer phone numbers as a key's scope may see them (pure): full E.164 for `admin`, else
masked the way logs and notifications mask them ("+49170*****67")."""

from __future__ import annotations

import phonenumbers


def mask_phone(phone: str) -> str:
    """Country code, 3 leading and 2 trailing digits of the national number; at least 3 hidden."""
    try:
        country = str(phonenumbers.parse(phone).country_code)
    except phonenumbers.NumberParseException:
        return "***"
    national = phone[1 + len(country) :]
    hidden = max(len(national) - 5, min(len(national), 3))
    tail = min(2, len(national) - hidden)
    head = len(national) - hidden - tail
    return f"+{country}{national[:head]}{'*' * hidden}{national[len(national) - tail :]}"


def phone_for(phone: str | None, *, full: bool) -> str | None:
    """`phone` unchanged for a key that may see it (`full`), else masked; None stays None."""
    if phone is None or full:
        return phone
    return mask_phone(phone)
