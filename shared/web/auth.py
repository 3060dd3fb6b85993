"""Authentication dependencies: Bearer API key -> Principal bound to the request's session."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from shared.db.tenancy import SYSTEM, bind_tenant
from shared.errors import Forbidden, NotFound, Unauthorized
from shared.redis.scripts import ScriptCall
from shared.security.api_keys import (
    VerifiedKey,
    cached_key,
    company_cache,
    company_is_active,
    verify_key,
)
from shared.web.deps import Session
from shared.web.rate_limit import RateLimiter, api_key_bucket, enforce, refuse_unless_allowed

bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer ak_...`")


@dataclass(frozen=True)
class Principal:
    company_id: str
    key_id: str
    scopes: frozenset[str]
    platform: bool

    def has(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


async def authenticate(
    request: Request,
    session: Session,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """Resolve the caller's key and bind the session to its company (401 when invalid).

    A platform key names the company in X-Company-ID (404 unless it exists and is active).
    Both the key and that company are cached in-process for AUTH_CACHE_TTL_S, so a warm
    request costs no SQL here; a revocation, scope change or deactivation empties the caches
    of every replica within AUTH_REVOCATION_POLL_S (shared/web/auth_revocation.py; a TTL of 0
    disables the caches).
    """
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("A valid API key is required (Authorization: Bearer ...).")
    cache_ttl_s = request.app.state.settings.auth_cache_ttl_s
    key = await verify_key(session, credentials.credentials, cache_ttl_s)
    if key is None:
        raise Unauthorized("The API key is invalid, expired or revoked.")
    await enforce_key_limit(request.app.state, key.id)
    company_id = key.company_id
    platform = company_id is None
    if platform:
        company_id = request.headers.get("x-company-id")
        if not company_id:
            raise Unauthorized("A platform key must name the tenant in X-Company-ID.")
        # Cached like the key itself: a deactivation publishes like a revocation (ADR 0014).
        if not await company_is_active(session, company_id, cache_ttl_s):
            raise NotFound("No such company.")
    assert company_id is not None
    bind_tenant(session, company_id)
    request.state.company_id = company_id
    return Principal(
        company_id=company_id, key_id=key.id, scopes=frozenset(key.scopes), platform=platform
    )


async def enforce_key_limit(state: Any, key_id: str) -> None:
    """Count one request of the key against its per-minute limit (429 when over it)."""
    await KeyLimit(state, key_id).hit()


class KeyLimit:
    """The per-minute limit of one API key (the app's limiter and limits), hit once per
    request: alone, or in the round trip of another script call (`hit_with`)."""

    def __init__(self, state: Any, key_id: str) -> None:
        self.limiter: RateLimiter = state.limiter
        self.bucket = self.limiter.key(api_key_bucket(key_id))
        self.limit: int = state.rate_limits.per_key_per_minute

    async def hit(self) -> None:
        await enforce(self.limiter, self.bucket, self.limit)

    async def hit_with(self, call: ScriptCall) -> Any:
        """Count the hit (429 when over the limit) and return `call`'s reply (or its Redis
        error), both from one round trip."""
        decision, reply = await self.limiter.hit_with(self.bucket, self.limit, 60, call)
        refuse_unless_allowed(decision, self.limit)
        return reply


def cached_principal(
    headers: Mapping[str, str], cache_ttl_s: float, *scopes: str
) -> Principal | None:
    """The principal of a warm request (a lean route's), from the in-process caches alone.

    None whenever `authenticate` might answer anything but this principal, or would need the
    database to know: no or malformed credentials, a key or a platform key's company not in
    the cache, or a key holding none of `scopes`. The caller then defers to the full route.
    Unlike `authenticate`, this counts no rate-limit hit: the caller does that (`enforce`).
    """
    if cache_ttl_s <= 0:
        return None
    scheme, token = get_authorization_scheme_param(headers.get("authorization"))
    if scheme.lower() != "bearer" or not token:
        return None
    key = cached_key(token)
    if key is None:
        return None
    company_id = key.company_id
    if company_id is None:
        company_id = headers.get("x-company-id")
        if not company_id or not company_cache.get(company_id):
            return None
    principal = Principal(
        company_id=company_id,
        key_id=key.id,
        scopes=frozenset(key.scopes),
        platform=key.company_id is None,
    )
    if not any(principal.has(scope) for scope in scopes):
        return None
    return principal


async def authenticate_platform_admin(
    request: Request,
    session: Session,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> VerifiedKey:
    """A platform key with the admin scope (no X-Company-ID needed): 401 without a valid
    key, 403 for a company key or a platform key without the admin scope."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("A valid API key is required (Authorization: Bearer ...).")
    key = await verify_key(
        session, credentials.credentials, request.app.state.settings.auth_cache_ttl_s
    )
    if key is None:
        raise Unauthorized("The API key is invalid, expired or revoked.")
    await enforce_key_limit(request.app.state, key.id)
    if key.company_id is not None:
        raise Forbidden("Only a platform key may manage platform keys.")
    if "admin" not in key.scopes:
        raise Forbidden("This API key needs the 'admin' scope.")
    # Platform keys are rows of no company: their admin works in the explicit system scope.
    bind_tenant(session, SYSTEM)
    return key


def require_scope(*scopes: str) -> object:
    """A dependency: authenticated and holding one of `scopes` (admin holds every scope)."""

    async def _check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not any(principal.has(scope) for scope in scopes):
            wanted = " or ".join(f"'{scope}'" for scope in scopes)
            raise Forbidden(f"This API key needs the {wanted} scope.")
        return principal

    return Depends(_check)


AdminPrincipal = Annotated[Principal, require_scope("admin")]
OperatorPrincipal = Annotated[Principal, require_scope("operator")]
ServicePrincipal = Annotated[Principal, require_scope("service")]
# Reads of configuration: operators, and the services that act on it.
ReaderPrincipal = Annotated[Principal, require_scope("operator", "service")]
AnyPrincipal = Annotated[Principal, Depends(authenticate)]
PlatformAdmin = Annotated[VerifiedKey, Depends(authenticate_platform_admin)]
