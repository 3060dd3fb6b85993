"""Cal.com from the webhooks side: events, the mirror and its fence, lookups, reconciliation."""
