"""Revocations reach every replica within a second, while warm requests stay free of I/O.

The key and company caches (shared/security/api_keys.py) keep a verified key for AUTH_CACHE_TTL_S.
Whoever revokes a key, changes its scopes or deactivates a company increments the Redis
counter `auth:generation` after the commit (`publish_after_commit`, `publish_auth_change`).
Every process runs a `RevocationWatcher` that reads the counter every AUTH_REVOCATION_POLL_S
and empties its caches when it moved: the next request of any key reads the database again.
One GET per process and interval, whatever the traffic; the hot path itself reads nothing.

Without Redis the counter cannot be read, so the watcher empties the caches every
OFFLINE_TTL_S instead: a revocation then takes effect within that bound, never the full TTL
(docs/adr/0014-keys-and-secrets-at-rest.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.engine import after_commit
from shared.security.api_keys import company_cache, key_cache

log = logging.getLogger(__name__)

GENERATION_KEY = "auth:generation"
OFFLINE_TTL_S = 2.0


def forget_cached_auth() -> None:
    """Empty this process's key and company caches."""
    key_cache.clear()
    company_cache.clear()


async def publish_auth_change(redis: Redis) -> bool:
    """Tell every replica (and this process) to forget cached keys; False if Redis failed."""
    forget_cached_auth()
    try:
        await redis.incr(GENERATION_KEY)
    except (RedisError, OSError) as exc:
        # The change has committed; replicas fall back to OFFLINE_TTL_S only if Redis is down
        # for them too, else they keep the entry up to AUTH_CACHE_TTL_S.
        log.error("auth change not published (Redis): %r", exc)
        return False
    return True


_watchers: list[RevocationWatcher] = []


def publish_after_commit(session: AsyncSession) -> None:
    """Publish an auth change once the session's transaction has committed, through the
    Redis client of this process's watcher (the running app's)."""

    async def _publish() -> None:
        if _watchers:
            await publish_auth_change(_watchers[-1].redis)
        else:
            forget_cached_auth()

    after_commit(session, _publish)


class RevocationWatcher:
    """Polls the auth generation and empties the caches when it changes (see module doc)."""

    def __init__(self, redis: Redis, poll_s: float, offline_ttl_s: float = OFFLINE_TTL_S) -> None:
        self.redis = redis
        self.poll_s = poll_s
        self.offline_ttl_s = offline_ttl_s
        self._seen: Any = object()  # matches no reply: the first poll empties the caches
        self._cleared_at = time.monotonic()
        self._offline = False
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def poll_once(self) -> None:
        try:
            # A Redis that answers slower than the interval counts as unreachable.
            async with asyncio.timeout(max(1.0, self.poll_s)):
                generation = await self.redis.get(GENERATION_KEY)
        except (RedisError, OSError, TimeoutError) as exc:
            if not self._offline:
                log.warning(
                    "auth generation unreadable (Redis): %r; cached keys now live at most %g s",
                    exc,
                    self.offline_ttl_s,
                )
                self._offline = True
            if time.monotonic() - self._cleared_at >= self.offline_ttl_s:
                self._clear()
            return
        if self._offline:
            log.info("auth generation readable again")
            self._offline = False
            self._seen = object()  # whatever was published meanwhile: clear once
        if generation != self._seen:
            self._seen = generation
            self._clear()

    def _clear(self) -> None:
        forget_cached_auth()
        self._cleared_at = time.monotonic()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.poll_once()
            except Exception:  # never let the watcher die: a dead one would mean 30 s again
                log.exception("auth revocation watcher failed; retrying")
                self._clear()
            await asyncio.sleep(self.poll_s)

    async def start(self) -> None:
        """Poll in the background from now on (the first poll without delay)."""
        self._task = asyncio.create_task(self._run(), name="auth-revocation-watcher")
        _watchers.append(self)

    async def stop(self) -> None:
        if self in _watchers:
            _watchers.remove(self)
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        # Python 3.11's asyncio.timeout can swallow a cancel that lands as its own deadline
        # expires (an event loop held up for longer than the poll timeout): cancel until done.
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        if not task.cancelled():
            with contextlib.suppress(Exception):
                task.result()
