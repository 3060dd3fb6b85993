"""Database access: portable column types, engine/session factories, tenancy filter."""
