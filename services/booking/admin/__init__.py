"""Tenant administration: schemas, generic CRUD and the per-resource rules behind /v1/admin."""
