"""Cal.com from the booking side: outbound sync of appointments, availability cross-check."""
