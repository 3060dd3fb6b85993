"""Background work: ARQ queues, the transactional outbox, the worker base and entry point."""
