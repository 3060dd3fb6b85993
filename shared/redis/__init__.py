"""Redis: connections (configured or embedded), Lua script calls, the shared circuit breaker."""
