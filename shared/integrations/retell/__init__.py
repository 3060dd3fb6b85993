"""Retell AI: request signatures and who is calling."""
