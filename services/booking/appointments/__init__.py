"""Appointments: book, cancel, reschedule, look up; idempotency, audit trail, REST API."""
