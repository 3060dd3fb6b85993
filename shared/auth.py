"""Authentication dependencies: Bearer API key -> Principal bound to the request's session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.api_keys import company_is_active, verify_key
from shared.db.tenancy import bind_tenant
from shared.deps import Session
from shared.errors import Forbidden, NotFound, Unauthorized
from shared.rate_limit import api_key_bucket, enforce

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
    request costs no SQL here: a revoked key or a deactivated company keeps working on a
    replica for up to that TTL (0 disables the caches).
    """
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("A valid API key is required (Authorization: Bearer ...).")
    cache_ttl_s = request.app.state.settings.auth_cache_ttl_s
    key = await verify_key(session, credentials.credentials, cache_ttl_s)
    if key is None:
        raise Unauthorized("The API key is invalid, expired or revoked.")
    await enforce(
        request.app.state.limiter,
        request.app.state.limiter.key(api_key_bucket(key.id)),
        request.app.state.rate_limits.per_key_per_minute,
    )
    company_id = key.company_id
    platform = company_id is None
    if platform:
        company_id = request.headers.get("x-company-id")
        if not company_id:
            raise Unauthorized("A platform key must name the tenant in X-Company-ID.")
        # Cached like the key itself: a company deactivated meanwhile is refused on this
        # replica once its entry expires, within AUTH_CACHE_TTL_S (docs/adr/0004).
        if not await company_is_active(session, company_id, cache_ttl_s):
            raise NotFound("No such company.")
    assert company_id is not None
    bind_tenant(session, company_id)
    request.state.company_id = company_id
    return Principal(
        company_id=company_id, key_id=key.id, scopes=frozenset(key.scopes), platform=platform
    )


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
