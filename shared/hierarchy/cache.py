"""The never-stale Redis cache of effective configurations, and memos of values derived from it.

`cfgver:<namespace>:<company_id>` holds the company's configuration version; an effective
value lives at `cfg:<namespace>:<company_id>:<version>:<key>` for 300 s as JSON. A read
fetches the version and the entry in ONE round trip (a Lua script). A write bumps the version
after its transaction commits, so the next read on any replica misses and reloads; nothing is
ever deleted or scanned.

The race: a reader must never file an old value under the new version. It reads the version
*before* its database reads and files what it loaded under that version, so a load that
predates a commit lands under a version older than that commit's bump. That holds only when
the loading reads see every commit made before the version was read (`Reads.snapshot_is_current`);
otherwise the loaded value is answered but not cached. Redis errors never fail a read: the
value then comes from the database.

Every read still asks Redis for the version (that is what makes it never stale), but what a
caller derives from a value (e.g. a parsed policy) may be kept in a `Memo` keyed by
(company, version, key).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.engine import after_commit
from shared.hierarchy.reads import Reads
from shared.observability.metrics import CACHE_REQUESTS
from shared.redis.scripts import ScriptCall

log = logging.getLogger(__name__)

Send = Callable[[ScriptCall], Awaitable[Any]]

CACHE_TTL_S: Final = 300

# KEYS[1] version key; ARGV: entry prefix, entry suffix, initial version. A missing version
# (never written, evicted, flushed) starts at the current time in microseconds, far above any
# version an earlier epoch can have reached, so entries of that epoch are never read again.
_READ_LUA: Final = """
local version = redis.call('GET', KEYS[1])
if not version then
  version = ARGV[3]
  redis.call('SET', KEYS[1], version)
end
return {version, redis.call('GET', ARGV[1] .. version .. ARGV[2])}
"""
_BUMP_LUA: Final = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], ARGV[1])
end
return redis.call('INCR', KEYS[1])
"""


@dataclass(frozen=True)
class Entry:
    """An effective value and the company version it is filed under.

    `version` is None when the value is filed under none (no cache, Redis unavailable, or a
    snapshot older than the version it read): then nothing derived from it may be memoized.
    Otherwise every value ever filed under (company, version, key) is at least as new as the
    commit that set that version, and a later commit bumps the version before its writer gets
    an answer, so a value derived from it may be memoized by that triple for as long as the
    version is current: the next read of a bumped version misses the memo.
    """

    version: str | None
    value: Any


class ConfigCache:
    """The versioned Redis cache of one namespace's effective configurations."""

    def __init__(self, redis: Redis, namespace: str, ttl_s: int = CACHE_TTL_S) -> None:
        self.redis = redis
        self.namespace = namespace
        self.ttl_s = ttl_s
        self._read = redis.register_script(_READ_LUA)
        self._bump = redis.register_script(_BUMP_LUA)

    def version_key(self, company_id: str) -> str:
        return f"cfgver:{self.namespace}:{company_id}"

    def entry_key(self, company_id: str, version: str, key: str) -> str:
        return f"cfg:{self.namespace}:{company_id}:{version}:{key}"

    async def read(
        self, company_id: str, key: str, *, send: Send | None = None
    ) -> tuple[str | None, Any]:
        """(version, cached value or None) in one round trip; (None, None) when Redis fails.
        `send` runs the script call instead (e.g. in a rate-limit hit's round trip) and
        returns its reply or the Redis error."""
        call = self.read_call(company_id, key)
        if send is not None:
            reply = await send(call)
        else:
            try:
                reply = await call.run()
            except (RedisError, OSError) as exc:
                reply = exc
        return self.read_reply(reply)

    def read_call(self, company_id: str, key: str) -> ScriptCall:
        """The script call of `read`, to run in a pipeline with others (`read_reply` then)."""
        args = [f"cfg:{self.namespace}:{company_id}:", f":{key}", _initial_version()]
        return ScriptCall(self._read, [self.version_key(company_id)], args)

    def read_reply(self, reply: Any) -> tuple[str | None, Any]:
        """What `read` answers for the script's reply (or the Redis error it got), counted."""
        if isinstance(reply, (RedisError, OSError)):
            CACHE_REQUESTS.labels(self.namespace, "error").inc()
            log.warning("config cache unavailable", extra={"error": repr(reply)})
            return None, None
        version, raw = reply
        version_text = version.decode() if isinstance(version, bytes) else str(version)
        value = None
        if raw is not None:
            try:
                value = json.loads(raw)
            except ValueError:  # not ours or truncated: treat as a miss and overwrite it
                value = None
        if value is None:
            CACHE_REQUESTS.labels(self.namespace, "miss").inc()
            return version_text, None
        CACHE_REQUESTS.labels(self.namespace, "hit").inc()
        return version_text, value

    async def write(self, company_id: str, version: str, key: str, value: Any) -> None:
        """File `value` under `version` (read before the value was loaded); errors are logged."""
        payload = json.dumps(value, separators=(",", ":"), sort_keys=False)
        try:
            await self.redis.set(self.entry_key(company_id, version, key), payload, ex=self.ttl_s)
        except (RedisError, OSError) as exc:
            log.warning("config cache write failed", extra={"error": repr(exc)})

    async def bump(self, company_id: str) -> None:
        """Invalidate every cached value of the company (errors are logged, never raised)."""
        try:
            await self._bump(keys=[self.version_key(company_id)], args=[_initial_version()])
        except (RedisError, OSError) as exc:
            # Entries of the old version expire within the TTL; nothing better is possible
            # without Redis, and the write itself has committed.
            log.error("config cache version bump failed", extra={"error": repr(exc)})

    def bump_after_commit(self, session: AsyncSession, company_id: str) -> None:
        """Bump the company's version once the session's transaction has committed."""

        async def _bump() -> None:
            await self.bump(company_id)

        after_commit(session, _bump)

    async def settle(
        self,
        reads: Reads,
        key: str,
        read: tuple[str | None, Any],
        load: Callable[[], Awaitable[Any]],
    ) -> Entry:
        """The entry for what `read(reads.company_id, key)` answered: the cached value, or
        `load()`'s (run after that read, as the race demands) filed under the version read."""
        version, cached = read
        if cached is not None:
            return Entry(version, cached)
        value = await load()
        if version is not None and await reads.snapshot_is_current():
            await self.write(reads.company_id, version, key, value)
            return Entry(version, value)
        return Entry(None, value)


class Memo:
    """Values derived from cached entries (e.g. parsed policies), by (company, version, key).

    In-process and bounded; each lookup still reads the current version from Redis, so a
    memoized value is never served after a write has bumped the company's version.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._values: dict[tuple[str, str, str], Any] = {}

    def get_or_make(self, company_id: str, entry: Entry, key: str, make: Callable[[], Any]) -> Any:
        if entry.version is None:
            return make()
        slot = (company_id, entry.version, key)
        try:
            return self._values[slot]
        except KeyError:
            pass
        value = make()
        if len(self._values) >= self.max_entries:
            self._values.clear()  # old versions are never read again; a refill is cheap
        self._values[slot] = value
        return value

    def clear(self) -> None:
        self._values.clear()


def _initial_version() -> str:
    return str(time.time_ns() // 1000)
