"""Operators: failed bookings, timelines, today's overview, the /ops page and its sessions."""
