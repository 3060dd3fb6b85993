"""What every channel adapter shares: the message, the result, the errors, recipient helpers.

An adapter sends one message over one channel and either returns a `SendResult` or raises a
`DeliveryError`: `TransientDeliveryError` means "try again later" (timeouts, refused
connections, 4xx SMTP replies, HTTP 429/5xx), `PermanentDeliveryError` means "this message
will never go out as it is" (bad address, refused recipient, HTTP 4xx). Error texts carry the
masked recipient only: they end up in logs and delivery rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final, Protocol

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from shared.phones import normalize_phone

CHANNELS: Final = ("email", "sms", "whatsapp")
PHONE_CHANNELS: Final = frozenset({"sms", "whatsapp"})
MAX_IDEMPOTENCY_KEY = 200


@dataclass(frozen=True)
class OutgoingMessage:
    """One rendered message for one recipient; `idempotency_key` is the same on every retry.

    The key goes into mail and HTTP headers, so it must be 1..200 visible ASCII characters.
    """

    channel: str
    to: str
    subject: str | None
    body: str
    idempotency_key: str
    sender_name: str | None = None

    def __post_init__(self) -> None:
        if self.channel not in CHANNELS:
            raise ValueError(f"unknown channel {self.channel!r} (one of {', '.join(CHANNELS)})")
        key = self.idempotency_key
        if not key or len(key) > MAX_IDEMPOTENCY_KEY or not all("!" <= c <= "~" for c in key):
            raise ValueError(
                f"idempotency_key must be 1..{MAX_IDEMPOTENCY_KEY} visible ASCII characters"
            )


@dataclass(frozen=True)
class SendResult:
    """The provider's id of the accepted message (SMTP: our Message-ID)."""

    provider_id: str | None


class DeliveryError(Exception):
    """Sending failed; see the subclasses for whether to try again."""


class TransientDeliveryError(DeliveryError):
    """Try again later; `retry_after_s` is the provider's wish when it stated one."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentDeliveryError(DeliveryError):
    """Never retry this message: the recipient or the message itself was refused."""


class ChannelAdapter(Protocol):
    """Sends one message over `channel`; raises a DeliveryError when it could not."""

    channel: str

    async def send(self, message: OutgoingMessage) -> SendResult: ...


# -- recipients ----------------------------------------------------------------------------


def normalize_recipient(channel: str, value: str) -> str:
    """The canonical address for `channel` (e-mail: domain lower-cased; phone: E.164), or
    ValueError with a message saying what is wrong."""
    if channel == "email":
        try:
            return validate_email(value.strip(), check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValueError(f"'{value}' is not a valid e-mail address: {exc}") from exc
    if channel in PHONE_CHANNELS:
        return normalize_phone(value)
    raise ValueError(f"unknown channel {channel!r} (one of {', '.join(CHANNELS)})")


def mask_recipient(channel: str, value: str) -> str:
    """A log-safe form: "m***@example.com", "+49170*****67"; "***" when `value` is invalid."""
    try:
        normalized = normalize_recipient(channel, value)
    except ValueError:
        return "***"
    if channel == "email":
        local, _, domain = normalized.rpartition("@")
        return f"{local[0]}***@{domain}"
    country = str(phonenumbers.parse(normalized).country_code)
    national = normalized[1 + len(country) :]
    # Keep 3 leading and 2 trailing digits, but hide at least 3 even of a very short number.
    hidden = max(len(national) - 5, min(len(national), 3))
    tail = min(2, len(national) - hidden)
    head = len(national) - hidden - tail
    return f"+{country}{national[:head]}{'*' * hidden}{national[len(national) - tail :]}"


def recipient_key(channel: str, value: str) -> str:
    """sha256 hex of "channel:normalized": finds a recipient without storing the address."""
    normalized = normalize_recipient(channel, value)
    return hashlib.sha256(f"{channel}:{normalized}".encode()).hexdigest()
