"""Keys, secrets at rest, booking references and the outbound address guard."""
