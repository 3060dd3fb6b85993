"""Notification templates: built-in texts, sandboxed rendering under a budget, save-time
validation, the companies' own texts and their API."""
