"""Tenant administration: the /v1/admin router, schemas, generic CRUD and per-resource rules."""
