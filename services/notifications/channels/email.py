"""E-mail over SMTP (aiosmtplib): one text/plain UTF-8 message per recipient.

The Message-ID is derived from the idempotency key, so a message sent again after an
ambiguous failure is recognisable as the same one (by us, by the relay, by the reader's
client); `X-Notification-Id` carries the key itself.

Failures are classified by whose fault they are: a 5xx refusal of the recipient or of the
message is permanent; a 4xx reply, a refused or dropped connection, a timeout, and problems of
our own set-up (login, TLS, sender refused) are transient, so the message goes out once the
relay or the configuration is fixed.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from urllib.parse import quote

import aiosmtplib
from email_validator import validate_email

from services.notifications.channels.base import (
    OutgoingMessage,
    PermanentDeliveryError,
    SendResult,
    TransientDeliveryError,
    mask_recipient,
    normalize_recipient,
)
from shared.config import Settings

MESSAGE_ID_DOMAIN = "appointments"
# RFC 5322 atext (plus "."): what may stand left of the "@" of a Message-ID unquoted.
_ATEXT = "!#$%&'*+-/=?^_`{|}~."


def message_id_for(idempotency_key: str) -> str:
    """The Message-ID of every send of this key: `<key@appointments>` (other characters than
    atext percent-encoded, so the id stays valid and distinct keys stay distinct)."""
    return f"<{quote(idempotency_key, safe=_ATEXT)}@{MESSAGE_ID_DOMAIN}>"


def _smtp_address(normalized: str) -> str:
    """The ASCII form (IDNA domain) where there is one: it needs no SMTPUTF8 from the relay."""
    return validate_email(normalized, check_deliverability=False).ascii_email or normalized


class SmtpEmailAdapter:
    """Sends e-mail through the SMTP relay of `settings` (smtp_*)."""

    channel = "email"

    def __init__(self, settings: Settings) -> None:
        self._host = settings.smtp_host
        self._port = settings.smtp_port
        self._username = settings.smtp_username
        self._password = settings.smtp_password
        self._security = settings.smtp_security
        self._timeout = settings.smtp_timeout_s
        self._from_name, self._from_addr = parseaddr(settings.smtp_from)
        if "@" not in self._from_addr:
            raise ValueError(f"SMTP_FROM {settings.smtp_from!r} has no e-mail address")

    def build(self, message: OutgoingMessage, to_addr: str) -> EmailMessage:
        """The MIME message for `message` (exposed for tests and previews)."""
        mail = EmailMessage()
        mail["From"] = formataddr((message.sender_name or self._from_name, self._from_addr))
        mail["To"] = to_addr
        if message.subject is not None:
            mail["Subject"] = message.subject
        mail["Date"] = format_datetime(datetime.now(UTC))
        mail["Message-ID"] = message_id_for(message.idempotency_key)
        mail["X-Notification-Id"] = message.idempotency_key
        # quoted-printable keeps the mail 7-bit clean: no relay needs 8BITMIME for umlauts.
        mail.set_content(message.body, charset="utf-8", cte="quoted-printable")
        return mail

    async def send(self, message: OutgoingMessage) -> SendResult:
        """Hand the message to the relay; each SMTP step waits at most smtp_timeout_s and the
        whole exchange at most twice that."""
        if message.channel != self.channel:
            raise PermanentDeliveryError(f"email adapter got a {message.channel} message")
        masked = mask_recipient("email", message.to)
        try:
            to_addr = _smtp_address(normalize_recipient("email", message.to))
        except ValueError as exc:
            raise PermanentDeliveryError(f"invalid e-mail recipient {masked}") from exc
        mail = self.build(message, to_addr)
        try:
            async with asyncio.timeout(2 * self._timeout):
                await aiosmtplib.send(
                    mail,
                    sender=self._from_addr,
                    recipients=[to_addr],
                    hostname=self._host,
                    port=self._port,
                    username=self._username,
                    password=self._password,
                    use_tls=self._security == "tls",
                    start_tls=self._security == "starttls",
                    timeout=self._timeout,
                )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refused.code for refused in exc.recipients]
            text = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            if codes and all(code >= 500 for code in codes):
                raise PermanentDeliveryError(f"SMTP refused {masked}: {text}") from exc
            raise TransientDeliveryError(f"SMTP deferred {masked}: {text}") from exc
        except (aiosmtplib.SMTPDataError, aiosmtplib.SMTPRecipientRefused) as exc:
            if exc.code >= 500:
                raise PermanentDeliveryError(
                    f"SMTP refused the message to {masked}: {exc.code} {exc.message}"
                ) from exc
            raise TransientDeliveryError(
                f"SMTP deferred the message to {masked}: {exc.code} {exc.message}"
            ) from exc
        except aiosmtplib.SMTPNotSupported as exc:
            if not to_addr.isascii():
                # The relay cannot carry an internationalised address (no SMTPUTF8).
                raise PermanentDeliveryError(f"SMTP relay cannot deliver to {masked}") from exc
            raise TransientDeliveryError(f"SMTP relay: {exc}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # Timeouts, refused/dropped connections, 4xx replies, and our own set-up (login,
            # TLS, sender): none of it is the recipient's fault.
            detail = str(exc) or type(exc).__name__
            raise TransientDeliveryError(f"SMTP delivery to {masked} failed: {detail}") from exc
        return SendResult(provider_id=mail["Message-ID"])
