"""Fault tests (issue 14): dependencies killed and restarted, processes stopped mid-work."""
