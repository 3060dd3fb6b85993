"""The one phone-number normalizer (pure): E.164 via libphonenumber, national numbers read in
the default region (Germany). Everything that stores, compares or sends a number uses it."""

from __future__ import annotations

import phonenumbers

DEFAULT_PHONE_REGION = "DE"
MAX_RAW_LENGTH = 50  # longer input is garbage, not a number someone said or typed


def e164(raw: object, region: str = DEFAULT_PHONE_REGION) -> str | None:
    """E.164 form of `raw` as spoken, typed or sent by a vendor; None when it is not a valid
    number (or not a string at all)."""
    if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_RAW_LENGTH:
        return None
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_phone(raw: str) -> str:
    """E.164 form of `raw`, or ValueError naming the problem (for validators)."""
    try:
        parsed = phonenumbers.parse(raw, DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"'{raw}' is not a phone number") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(f"'{raw}' is not a valid phone number (E.164, e.g. +4930123456)")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
