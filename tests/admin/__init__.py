"""Tests of the tenant administration API (/v1/admin)."""
