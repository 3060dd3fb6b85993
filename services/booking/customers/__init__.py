"""Customers as operators look them up: search by phone or name, one customer in detail."""
