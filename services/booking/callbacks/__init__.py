"""Callback requests after creation: state machine, REST API, escalation cron, metric."""
