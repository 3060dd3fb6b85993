"""Booking references: short codes a caller can read out to prove which appointment is theirs.

Six characters from an alphabet without look-alikes (no 0/O, 1/I/L), drawn with `secrets`:
31^6 (about 887 million) codes per company. Pure functions; the model assigns them
(`shared.models.appointment`), so no path that inserts an appointment can forget one.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from typing import Final

ALPHABET: Final = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
LENGTH: Final = 6
_VALID: Final = re.compile(f"^[{ALPHABET}]{{{LENGTH}}}$")

# What a speech-to-text engine may write for a spoken digit (German and English).
_DIGIT_WORDS: Final = {
    "zwei": "2", "zwo": "2", "drei": "3", "vier": "4", "fuenf": "5", "funf": "5",
    "sechs": "6", "sieben": "7", "acht": "8", "neun": "9",
    "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9",
}  # fmt: skip
_SEPARATORS: Final = re.compile(r"[\s\-_.,/:;]+")


def new_reference() -> str:
    """A random reference (not checked for uniqueness: the model's flush hook does that)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def is_reference(text: str) -> bool:
    return bool(_VALID.match(text))


def normalize_reference(raw: object) -> str | None:
    """A reference as the agent passed it ("k7m-2p9", "K 7 M 2 P 9", "K sieben M zwei P neun"),
    upper-cased and joined; None when it cannot be one."""
    if not isinstance(raw, str) or len(raw) > 100:
        return None
    text = unicodedata.normalize("NFKC", raw).casefold()
    text = text.replace("ü", "ue")
    parts = [_DIGIT_WORDS.get(part, part) for part in _SEPARATORS.split(text) if part]
    joined = "".join(parts).upper()
    return joined if is_reference(joined) else None


def spelled(reference: str) -> str:
    """The reference as a text-to-speech engine reads it letter by letter: "K 7 M 2 P 9"."""
    return " ".join(reference)
