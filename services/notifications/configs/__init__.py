"""Notification configs: who is told what over which channel, per level, merged with provenance."""
