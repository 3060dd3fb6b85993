"""SMS and WhatsApp through an HTTP messaging gateway, configured by base URL and token.

The API we expect of the gateway (tests/support/fake_messaging.py implements it)::

    POST {base_url}/v1/messages
    Authorization: Bearer {token}
    Idempotency-Key: {idempotency_key}
    Content-Type: application/json

    {"channel": "sms" | "whatsapp", "to": "+491701234567", "body": "...", "sender": "..."}

`sender` is optional (omitted when we have none). Answers:
- 201 `{"id": "...", "status": "queued"}`: accepted;
- 200 with the same body: a repeated Idempotency-Key, the message was accepted before and is
  not sent again;
- 400/401/403/404/422 `{"error": "..."}`: refused, never retried (bad number, bad token, ...);
- 429 and 5xx, optionally with `Retry-After` (seconds or an HTTP date): try again later.

Our side: every call is bounded by `timeout_s`; timeouts, connection errors, 408/409/425/429,
5xx and a 2xx without an `id` are transient (the Idempotency-Key makes the retry safe);
every other 4xx (and an unexpected 1xx/3xx) is permanent, with the gateway's error text.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from services.notifications.channels.base import (
    PHONE_CHANNELS,
    OutgoingMessage,
    PermanentDeliveryError,
    SendResult,
    TransientDeliveryError,
    mask_recipient,
    normalize_recipient,
)

MAX_ERROR_TEXT = 500
# 408 timeout, 409 the same Idempotency-Key still in flight, 425 too early, 429 rate limit.
TRANSIENT_4XX = frozenset({408, 409, 425, 429})


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), else None."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(seconds, 0.0)


class HttpMessagingAdapter:
    """Sends `channel` ("sms" or "whatsapp") messages through the gateway at `base_url`."""

    def __init__(
        self,
        channel: str,
        base_url: str,
        token: str,
        http: httpx.AsyncClient,
        timeout_s: float,
    ) -> None:
        if channel not in PHONE_CHANNELS:
            raise ValueError(f"the HTTP gateway carries sms or whatsapp, not {channel!r}")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.channel = channel
        self._url = f"{base_url.rstrip('/')}/v1/messages"
        self._token = token
        self._http = http
        self._timeout = timeout_s

    async def send(self, message: OutgoingMessage) -> SendResult:
        """POST the message; the provider's message id, or a DeliveryError."""
        if message.channel != self.channel:
            raise PermanentDeliveryError(f"{self.channel} adapter got a {message.channel} message")
        masked = mask_recipient(self.channel, message.to)
        try:
            to = normalize_recipient(self.channel, message.to)
        except ValueError as exc:
            raise PermanentDeliveryError(f"invalid {self.channel} recipient {masked}") from exc
        payload: dict[str, Any] = {"channel": self.channel, "to": to, "body": message.body}
        if message.sender_name is not None:
            payload["sender"] = message.sender_name
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Idempotency-Key": message.idempotency_key,
        }
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._http.post(
                    self._url, json=payload, headers=headers, timeout=self._timeout
                )
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise TransientDeliveryError(
                f"{self.channel} gateway did not answer within {self._timeout:g} s ({masked})"
            ) from exc
        except httpx.HTTPError as exc:
            detail = str(exc) or type(exc).__name__
            raise TransientDeliveryError(
                f"{self.channel} gateway unreachable ({masked}): {detail}"
            ) from exc
        return self._result(response, masked)

    def _result(self, response: httpx.Response, masked: str) -> SendResult:
        status = response.status_code
        if 200 <= status < 300:
            try:
                data = response.json()
            except ValueError:
                data = None
            provider_id = data.get("id") if isinstance(data, dict) else None
            if isinstance(provider_id, bool) or provider_id == "":
                provider_id = None
            if not isinstance(provider_id, str | int):
                raise TransientDeliveryError(
                    f"{self.channel} gateway answered {status} without a message id ({masked})"
                )
            return SendResult(provider_id=str(provider_id))
        text = response.text[:MAX_ERROR_TEXT]
        if status >= 500 or status in TRANSIENT_4XX:
            raise TransientDeliveryError(
                f"{self.channel} gateway answered {status} ({masked}): {text}",
                retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
            )
        raise PermanentDeliveryError(f"{self.channel} gateway refused {masked}: {status} {text}")
