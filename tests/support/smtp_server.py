"""A real SMTP server (aiosmtpd, in its own thread) on 127.0.0.1 and a free port, for tests.

    async with SmtpTestServer() as smtp:          # or `with SmtpTestServer() as smtp:`
        settings = Settings(smtp_host=smtp.host, smtp_port=smtp.port)
        ... send ...
        [mail] = await smtp.wait_for(1)
        assert mail["Subject"] == "Ihr Termin"

Received mails are parsed `email.message.EmailMessage` objects (`.messages`, their SMTP
envelopes in `.envelopes`). Switches for failure tests:
- `refuse(*addresses)`: RCPT TO these addresses (all when none given) answers 550;
- `defer(times=1)`: the next `times` RCPT TO answer 451 (try again later);
- `reset_switches()`.
With `smtputf8=False` the server does not offer SMTPUTF8 (as many relays).
"""

from __future__ import annotations

import asyncio
import threading
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller

from shared.redis.connection import free_port

REFUSED = "550 5.1.1 Mailbox unavailable"
DEFERRED = "451 4.3.0 Temporary failure, try again later"


class _Handler:
    def __init__(self, server: SmtpTestServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        return self.server._rcpt(envelope, address)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode()
        # Lines end in CRLF on the wire; the parsed message reads like a local file (LF).
        message = BytesParser(policy=policy.default).parsebytes(raw.replace(b"\r\n", b"\n"))
        assert isinstance(message, EmailMessage)
        self.server._received(envelope.mail_from, list(envelope.rcpt_tos), message)
        return "250 2.0.0 Message accepted for delivery"


class SmtpTestServer:
    """aiosmtpd on loopback, collecting what it receives (thread-safe)."""

    def __init__(self, *, smtputf8: bool = True) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self._lock = threading.Lock()
        self._messages: list[EmailMessage] = []
        self._envelopes: list[tuple[str, list[str]]] = []
        self._refused: set[str] | None = None  # None: refuse nobody; empty set: everybody
        self._defer = 0
        self._controller = Controller(
            _Handler(self), hostname=self.host, port=self.port, enable_SMTPUTF8=smtputf8
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpTestServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> SmtpTestServer:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    # -- switches --------------------------------------------------------------------------

    def refuse(self, *addresses: str) -> None:
        """Answer 550 to RCPT TO `addresses` (case-insensitive), or to everybody."""
        with self._lock:
            self._refused = {a.lower() for a in addresses}

    def defer(self, times: int = 1) -> None:
        """Answer 451 to the next `times` RCPT TO."""
        with self._lock:
            self._defer = times

    def reset_switches(self) -> None:
        with self._lock:
            self._refused = None
            self._defer = 0

    def _rcpt(self, envelope: Any, address: str) -> str:
        with self._lock:
            if self._refused is not None and (
                not self._refused or address.lower() in self._refused
            ):
                return REFUSED
            if self._defer > 0:
                self._defer -= 1
                return DEFERRED
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    # -- what arrived ----------------------------------------------------------------------

    def _received(self, mail_from: str, rcpt_tos: list[str], message: EmailMessage) -> None:
        with self._lock:
            self._messages.append(message)
            self._envelopes.append((mail_from, rcpt_tos))

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return list(self._messages)

    @property
    def envelopes(self) -> list[tuple[str, list[str]]]:
        """(MAIL FROM, [RCPT TO, ...]) of each received message, in order."""
        with self._lock:
            return [(sender, list(rcpts)) for sender, rcpts in self._envelopes]

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._envelopes.clear()

    def count_message_id(self, message_id: str) -> int:
        """How many received messages carry this Message-ID (angle brackets optional)."""
        wanted = message_id.strip().strip("<>")
        return sum(
            1 for m in self.messages if str(m.get("Message-ID", "")).strip().strip("<>") == wanted
        )

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[EmailMessage]:
        """The received messages once there are at least `count`, or TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.messages
            if len(messages) >= count:
                return messages
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(messages)} of {count} messages within {timeout} s")
            await asyncio.sleep(0.01)
