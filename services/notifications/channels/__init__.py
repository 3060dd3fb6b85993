"""Delivery channel adapters: send one rendered message over e-mail, SMS or WhatsApp."""

from services.notifications.channels.base import (
    CHANNELS,
    ChannelAdapter,
    DeliveryError,
    OutgoingMessage,
    PermanentDeliveryError,
    SendResult,
    TransientDeliveryError,
    mask_recipient,
    normalize_recipient,
    recipient_key,
)
from services.notifications.channels.email import SmtpEmailAdapter, message_id_for
from services.notifications.channels.http_provider import HttpMessagingAdapter
from services.notifications.channels.registry import (
    ChannelNotConfigured,
    adapter_for,
    adapters_from_settings,
)

__all__ = [
    "CHANNELS",
    "ChannelAdapter",
    "ChannelNotConfigured",
    "DeliveryError",
    "HttpMessagingAdapter",
    "OutgoingMessage",
    "PermanentDeliveryError",
    "SendResult",
    "SmtpEmailAdapter",
    "TransientDeliveryError",
    "adapter_for",
    "adapters_from_settings",
    "mask_recipient",
    "message_id_for",
    "normalize_recipient",
    "recipient_key",
]
