"""Clients of third parties we call or that call us."""
