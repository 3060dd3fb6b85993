"""Reminders: the cron that stages `booking_reminder_24h` / `_2h` once per start and channel."""
