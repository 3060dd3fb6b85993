"""Operators and stored events: list, read and replay webhook events (API and CLI)."""
