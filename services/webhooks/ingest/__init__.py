"""Ingestion: the two webhook endpoints, checks, store once, enqueue; the worker contract."""
