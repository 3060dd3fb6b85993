"""The FastAPI application factory every service uses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager

from arq.connections import ArqRedis
from fastapi import APIRouter, FastAPI

from shared.config import Settings, get_settings
from shared.db.engine import Database
from shared.gc_tuning import freeze_startup_objects
from shared.observability.logging import configure_logging
from shared.observability.metrics import MetricsMiddleware, metrics_endpoint
from shared.observability.tracing import TracingMiddleware, configure_tracing
from shared.redis.connection import redis_client
from shared.web import lean
from shared.web.auth_revocation import RevocationWatcher
from shared.web.body_limit import BodyLimit
from shared.web.correlation import CorrelationIdMiddleware
from shared.web.docs import install_docs
from shared.web.health import router as health_router
from shared.web.problems import install_problem_handlers
from shared.web.rate_limit import RateLimiter, limits_from_env

Hook = Callable[[FastAPI], Awaitable[None]]


def create_app(
    *,
    service: str,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    settings: Settings | None = None,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    configure_logs: bool = True,
    lean_routes: Mapping[tuple[str, str], lean.Handler] | None = None,
) -> FastAPI:
    """Build a service app: problem+json errors, correlation ids, traces, metrics, health, docs."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if configure_logs:
            configure_logging(service, settings.log_level, settings.log_json)
        configure_tracing(service, settings)
        app.state.db = Database(settings=settings)
        app.state.redis = redis_client(settings=settings)
        # ARQ's client over the same connection pool; no ping, so start-up never waits on Redis.
        app.state.arq = ArqRedis(connection_pool=app.state.redis.connection_pool)
        app.state.limiter = RateLimiter(app.state.redis)
        app.state.rate_limits = limits_from_env()
        # Revoked keys are refused on this replica within AUTH_REVOCATION_POLL_S (ADR 0014).
        app.state.revocations = RevocationWatcher(app.state.redis, settings.auth_revocation_poll_s)
        await app.state.revocations.start()
        try:
            for hook in on_startup:
                await hook(app)
            freeze_startup_objects()
            yield
        finally:
            for hook in on_shutdown:
                await hook(app)
            await app.state.revocations.stop()
            await app.state.redis.aclose()
            await app.state.db.dispose()

    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url=None,  # served by install_docs from packaged assets, not a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.service = service
    install_problem_handlers(app)
    if lean_routes and settings.lean_routes:
        lean.install(app, lean_routes)  # innermost: inside the four below
    # Outside lean routes, routing, body parsing and auth; inside the three below, so a 413
    # is counted, traced and carries its correlation id (docs/adr/0013-edges.md).
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    # Innermost of the three: the span sees the correlation id the endpoint settles on.
    app.add_middleware(TracingMiddleware)
    app.add_middleware(MetricsMiddleware, service=service)
    app.add_middleware(CorrelationIdMiddleware)
    app.include_router(health_router)
    install_docs(app)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    for router in routers:
        app.include_router(router)
    return app
