"""A slow relay: the real SMTP test server (aiosmtpd) answering DATA `reply_delay_s` after it
took the message in. The message counts as received (`messages`) from the moment the relay
has it, before the client hears "250": a stop that lands in between is the ambiguous case
(the relay delivers, the sender does not know) that ADR 0020 is about.

    async with SlowSmtpServer(reply_delay_s=0.5) as smtp:
        ...
        smtp.in_flight   # messages taken in whose "250" has not been sent yet
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.smtp_server import SmtpTestServer, _Handler


class _SlowHandler(_Handler):
    server: SlowSmtpServer

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)  # received (counted)
        await asyncio.sleep(self.server.reply_delay_s)
        with self.server._lock:
            self.server._replied += 1
        return reply


class SlowSmtpServer(SmtpTestServer):
    """SmtpTestServer whose every DATA reply comes `reply_delay_s` late."""

    def __init__(self, reply_delay_s: float) -> None:
        super().__init__()
        self.reply_delay_s = reply_delay_s
        self._replied = 0
        self._controller = Controller(_SlowHandler(self), hostname=self.host, port=self.port)

    @property
    def replied(self) -> int:
        """Messages whose "250" went out."""
        with self._lock:
            return self._replied

    @property
    def in_flight(self) -> int:
        """Messages the relay has, whose sender still waits for the "250"."""
        with self._lock:
            return len(self._messages) - self._replied

    def clear(self) -> None:
        """Forget what arrived (call it when nothing is in flight)."""
        with self._lock:
            self._replied = 0
            self._messages.clear()
            self._envelopes.clear()
