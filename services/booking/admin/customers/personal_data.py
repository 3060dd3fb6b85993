"""How one person shows up in stored text, and how to remove them from it (pure: no I/O).

A customer is recognised by their phone number in any form (E.164, national, `0049...`,
URL-encoded `%2B49...`, grouped by spaces or dashes), their e-mail (also `%40`-encoded) and
their full name (also JSON- and URL-encoded). Every form is compared in lower case.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, quote_plus

import phonenumbers

from shared.phones import DEFAULT_PHONE_REGION

ERASED = "[erased]"
ERASED_NAME = "erased"
# Shorter names ("Anna", "Li") are too common to be searched in free text: such a customer's
# own rows (appointments, calls, callbacks) are still cleared by id.
MIN_NAME_CHARS = 5
_PLACEHOLDER_PREFIX = "erased-"


def phone_placeholder() -> str:
    """A random stand-in for an erased customer's phone: unique per company like a number,
    20 characters (the column's size), and without digits, so that nothing parses it as
    a phone number or matches it with one."""
    letters = "".join(secrets.choice(string.ascii_lowercase) for _ in range(13))
    return _PLACEHOLDER_PREFIX + letters


def is_placeholder(phone: str | None) -> bool:
    return phone is not None and phone.startswith(_PLACEHOLDER_PREFIX)


def national_number(phone: str) -> str | None:
    """The national significant number of an E.164 phone (`+4917012345678` -> `17012345678`):
    the part every written form of the number contains."""
    try:
        parsed = phonenumbers.parse(phone, DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException:
        return None
    digits = phonenumbers.national_significant_number(parsed)
    return digits if len(digits) >= 6 else None


def _text_forms(value: str) -> set[str]:
    """`value` as written in plain text, in JSON (ASCII escapes) and in URLs."""
    forms = {value, json.dumps(value)[1:-1], quote(value, safe=""), quote_plus(value, safe="")}
    return {form.lower() for form in forms if form}


@dataclass(frozen=True)
class Identity:
    """The needles that mark a text as being about one person."""

    needles: frozenset[str]
    digits: str | None = None  # the phone's national number, found also when grouped

    @property
    def empty(self) -> bool:
        return not self.needles

    def with_ids(self, ids: Iterable[str]) -> Identity:
        """Also treat these identifiers (their calls' Retell ids, say) as mentions."""
        return replace(self, needles=self.needles | {i.lower() for i in ids if i})

    def mentions(self, text: str) -> bool:
        lowered = text.lower()
        if any(needle in lowered for needle in self.needles):
            return True
        return self.digits is not None and _grouped(self.digits).search(text) is not None


def _grouped(digits: str) -> re.Pattern[str]:
    """The digits in order, each pair at most two separators apart (`0170 123 45-67`)."""
    return re.compile(r"(?:[\s./()-]|%20){0,2}".join(re.escape(d) for d in digits))


def identity(phone: str | None, email: str | None, name: str | None) -> Identity:
    """The identity of a customer as stored (E.164 phone, e-mail, name)."""
    needles: set[str] = set()
    digits = None
    if phone and not is_placeholder(phone):
        digits = national_number(phone)
        needles |= _text_forms(phone)
        if digits:
            needles.add(digits)
    if email:
        needles |= _text_forms(email.strip())
    if name:
        cleaned = " ".join(name.split())
        if len(cleaned) >= MIN_NAME_CHARS and cleaned != ERASED_NAME:
            needles |= _text_forms(cleaned)
    return Identity(frozenset(needles), digits)


def scrub(value: Any, who: Identity) -> tuple[Any, bool]:
    """`value` (text or JSON) with every string that mentions `who` replaced by ERASED, and
    whether anything changed. Object keys that mention them are replaced too."""
    if isinstance(value, str):
        return (ERASED, True) if who.mentions(value) else (value, False)
    if isinstance(value, list):
        items = [scrub(item, who) for item in value]
        return [item for item, _ in items], any(changed for _, changed in items)
    if isinstance(value, dict):
        result: dict[Any, Any] = {}
        changed = False
        for key, item in value.items():
            new_key, key_changed = scrub(key, who) if isinstance(key, str) else (key, False)
            new_item, item_changed = scrub(item, who)
            if key_changed and new_key in result:
                new_key = f"{ERASED}{len(result)}"
            result[new_key] = new_item
            changed = changed or key_changed or item_changed
        return result, changed
    return value, False


def scrub_text(value: str, who: Identity) -> str:
    """`value` with each mention of `who` cut out (for a short field that must stay, such as
    the path of a logged API call)."""
    result = value
    for needle in sorted(who.needles, key=len, reverse=True):
        result = re.sub(re.escape(needle), ERASED, result, flags=re.IGNORECASE)
    if who.digits is not None:
        result = _grouped(who.digits).sub(ERASED, result)
    return result


def erased_hash(row_id: str) -> str:
    """A hash that keeps a row unique without deriving from anything personal."""
    return hashlib.sha256(f"erased:{row_id}".encode()).hexdigest()
