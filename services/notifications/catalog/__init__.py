"""The 13 notification event types: defaults, labels, the `/v1/notification-events` API."""
