"""The HTTP edge every service shares: app factory, auth, dependencies, problems, limits, health."""
