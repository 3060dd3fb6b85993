"""Notification deliveries: who hears of an event, exactly-once sending, the deliveries API."""
