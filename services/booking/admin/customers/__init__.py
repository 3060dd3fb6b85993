"""Customer data under data-protection law (DSGVO): export and erasure."""
