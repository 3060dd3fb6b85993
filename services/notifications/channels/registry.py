"""The channel adapters a process can use, built once from the settings."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from services.notifications.channels.base import ChannelAdapter, PermanentDeliveryError
from services.notifications.channels.email import SmtpEmailAdapter
from services.notifications.channels.http_provider import HttpMessagingAdapter
from shared.config import Settings


class ChannelNotConfigured(PermanentDeliveryError):
    """No adapter for this channel here (e.g. SMS without SMS_PROVIDER_URL)."""


def adapters_from_settings(
    settings: Settings, http: httpx.AsyncClient
) -> dict[str, ChannelAdapter]:
    """E-mail always (the SMTP host has a default); sms/whatsapp when their URL is set.

    A provider URL without its token is a configuration error (ValueError at start-up) rather
    than a stream of 401s later.
    """
    adapters: dict[str, ChannelAdapter] = {"email": SmtpEmailAdapter(settings)}
    providers = (
        ("sms", settings.sms_provider_url, settings.sms_provider_token),
        ("whatsapp", settings.whatsapp_provider_url, settings.whatsapp_provider_token),
    )
    for channel, url, token in providers:
        if not url:
            continue
        if not token:
            name = channel.upper()
            raise ValueError(f"{name}_PROVIDER_TOKEN must be set when {name}_PROVIDER_URL is")
        adapters[channel] = HttpMessagingAdapter(
            channel, url, token, http, settings.messaging_timeout_s
        )
    return adapters


def adapter_for(adapters: Mapping[str, ChannelAdapter], channel: str) -> ChannelAdapter:
    """The adapter for `channel`, or ChannelNotConfigured (a permanent failure)."""
    try:
        return adapters[channel]
    except KeyError:
        raise ChannelNotConfigured(f"no {channel} channel is configured") from None
