"""Access to a company: its API keys, the platform keys, its Cal.com link."""
