"""Hierarchical configuration (company > branch > service > staff) with a never-stale cache.

Written once for every setting configured per level (policies, notifications): resolve a
target's entity chain, load the rows of its four levels in one query, merge them with the
caller's function, and cache the result in Redis.

Cache design. `cfgver:<namespace>:<company_id>` holds the company's configuration version;
an effective value lives at `cfg:<namespace>:<company_id>:<version>:<key>` for 300 s as JSON.
A read fetches the version and the entry in ONE round trip (a Lua script). A write bumps the
version after its transaction commits, so the next read on any replica misses and reloads;
nothing is ever deleted or scanned.

The race: a reader must never file an old value under the new version. It reads the version
*before* its database reads and files what it loaded under that version, so a load that
predates a commit lands under a version older than that commit's bump. That holds only when
the loading reads see every commit made before the version was read (see `snapshot_is_current`);
otherwise the loaded value is answered but not cached. Redis errors never fail a read: the
value then comes from the database.

Hot path. Every read still asks Redis for the version (that is what makes it never stale), but
what a caller derives from a value (e.g. a parsed policy) may be kept in a `Memo` keyed by
(company, version, key). The chain's SELECT uses statements built once (scoped PER_CALL,
shared.db.scoped), and `resolve_effective` overlaps it with the cache read when the ids alone
fix the chain.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.engine import after_commit
from shared.db.raw_sql import RawPool
from shared.db.scoped import execute, scoped
from shared.db.tenancy import PER_CALL
from shared.errors import InvalidInput, NotFound
from shared.models import Branch, Service, Staff
from shared.observability.metrics import CACHE_REQUESTS
from shared.redis.scripts import ScriptCall

log = logging.getLogger(__name__)

LEVELS: Final = ("company", "branch", "service", "staff")
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
class Chain:
    """The entities whose configs apply to a target, from the company down to the staff."""

    company_id: str
    branch_id: str | None = None
    service_id: str | None = None
    staff_id: str | None = None

    def levels(self) -> list[tuple[str, str]]:
        """(level, entity_id) of every level present, company first."""
        ids = (self.company_id, self.branch_id, self.service_id, self.staff_id)
        return [(level, entity) for level, entity in zip(LEVELS, ids, strict=True) if entity]

    def cache_key(self) -> str:
        entities = (self.branch_id, self.service_id, self.staff_id)
        return ":".join(entity or "-" for entity in entities)


@functools.cache
def _chain_statement(staff: bool, service: bool, branch: bool) -> sa.Select[Any]:
    """One SELECT of scalar subqueries for the ids given (built once per combination, scoped
    PER_CALL: hot reads run it on the session's connection or the raw pool, sparing
    SQLAlchemy the per-call construction, cache key and ORM result adaptation)."""
    columns: list[sa.ColumnElement[Any]] = []
    if staff:
        columns.append(
            sa.select(Staff.branch_id)
            .where(Staff.id == sa.bindparam("staff_id"))
            .scalar_subquery()
            .label("staff_branch")
        )
    if service:
        # '' marks a service offered by every branch; NULL marks no such service.
        columns.append(
            sa.select(sa.func.coalesce(Service.branch_id, ""))
            .where(Service.id == sa.bindparam("service_id"))
            .scalar_subquery()
            .label("service_branch")
        )
    if branch:
        columns.append(
            sa.select(Branch.id)
            .where(Branch.id == sa.bindparam("branch_id"))
            .scalar_subquery()
            .label("branch")
        )
    return scoped(sa.select(*columns), PER_CALL)


def _chain_params(ids: Mapping[str, str | None]) -> tuple[sa.Select[Any], dict[str, Any]]:
    statement = _chain_statement(
        bool(ids["staff_id"]), bool(ids["service_id"]), bool(ids["branch_id"])
    )
    return statement, dict(ids)


def _chain_from(found: Mapping[str, Any], company_id: str, ids: Mapping[str, str | None]) -> Chain:
    """The chain the chain statement's row gives, or the 404/422 for the ids it refuses."""
    staff_id, service_id, branch_id = ids["staff_id"], ids["service_id"], ids["branch_id"]
    if staff_id and found["staff_branch"] is None:
        raise NotFound("No such staff member.", field="staff_id")
    if service_id and found["service_branch"] is None:
        raise NotFound("No such service.", field="service_id")
    if branch_id and found["branch"] is None:
        raise NotFound("No such branch.", field="branch_id")
    staff_branch: str | None = found["staff_branch"] if staff_id else None
    service_branch: str | None = (found["service_branch"] or None) if service_id else None
    branch = branch_id or staff_branch or service_branch
    if staff_branch is not None and staff_branch != branch:
        raise InvalidInput("The staff member works at another branch.", field="staff_id")
    if service_branch is not None and service_branch != branch:
        raise InvalidInput("The service is not offered at that branch.", field="service_id")
    return Chain(company_id, branch, service_id or None, staff_id or None)


async def resolve_chain(
    session: AsyncSession,
    company_id: str,
    *,
    branch_id: str | None = None,
    service_id: str | None = None,
    staff_id: str | None = None,
) -> Chain:
    """Complete a target's chain in one query: staff -> its branch, service -> its branch if any.

    An id not found in the company: 404 naming the field. Ids that contradict each other (a
    staff member or a branch-bound service of another branch): 422 naming the field.
    """
    if not (branch_id or service_id or staff_id):
        return Chain(company_id)
    ids = {"branch_id": branch_id, "service_id": service_id, "staff_id": staff_id}
    statement, params = _chain_params(ids)
    row = (await execute(session, statement, params, company_id=company_id)).one()
    found: Mapping[str, Any] = row._asdict()
    return _chain_from(found, company_id, ids)


async def resolve_chain_raw(
    reads: RawPool, company_id: str, ids: Mapping[str, str | None]
) -> Chain:
    """`resolve_chain` for a caller bound to `company_id`, through autocommit raw reads."""
    if not any(ids.values()):
        return Chain(company_id)
    statement, params = _chain_params(ids)
    found = await reads.first(statement, params, tenant=company_id)
    return _chain_from(found._asdict(), company_id, ids)


async def check_entity(session: AsyncSession, company_id: str, level: str, entity_id: str) -> None:
    """404 unless `entity_id` is an entity of `level` in the company (the company itself at
    company level)."""
    if level not in LEVELS:
        raise InvalidInput(f"level must be one of {', '.join(LEVELS)}", field="level")
    if level == "company":
        exists = entity_id == company_id
    else:
        model: Any = {"branch": Branch, "service": Service, "staff": Staff}[level]
        exists = (
            await session.scalar(
                sa.select(model.id).where(model.id == entity_id, model.company_id == company_id)
            )
        ) is not None
    if not exists:
        raise NotFound(f"No such {level}.", field="entity_id")


def _config_column(row: Any) -> Mapping[str, Any]:
    config: Mapping[str, Any] = row.config
    return config


async def load_levels(
    session: AsyncSession,
    model: Any,
    chain: Chain,
    filters: Mapping[str, Any],
    to_config: Callable[[Any], Mapping[str, Any]] = _config_column,
) -> dict[str, Mapping[str, Any]]:
    """The stored config of each level of the chain, in one query.

    `model` is a table with `company_id`, `level`, `entity_id` columns; `filters` (column name
    -> value) select one row per level, e.g. `{"policy_type": "cancellation"}`.
    """
    scopes = [
        sa.and_(model.level == level, model.entity_id == entity) for level, entity in chain.levels()
    ]
    statement = (
        sa.select(model)
        .where(
            model.company_id == chain.company_id,
            sa.or_(*scopes),
            *(getattr(model, column) == value for column, value in filters.items()),
        )
        .execution_options(populate_existing=True)
    )
    rows = (await session.scalars(statement)).all()
    return {row.level: to_config(row) for row in rows}


async def snapshot_is_current(session: AsyncSession) -> bool:
    """Do this session's next reads see every commit made before now?

    READ COMMITTED (MariaDB here) reads the latest commits in each statement. A SQLite write
    transaction (BEGIN IMMEDIATE) holds the write lock, so every commit precedes its snapshot.
    A SQLite read transaction keeps the snapshot of its first read, which may be older.
    """
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        options = connection.sync_connection.get_execution_options()  # type: ignore[union-attr]
        return bool(options.get("sqlite_begin") == "IMMEDIATE")
    # shared.db.engine runs MySQL/MariaDB at READ COMMITTED; asking the server would cost a
    # round trip on every read.
    return True


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
        self, company_id: str, key: str, *, first_look: bool = False
    ) -> tuple[str | None, Any]:
        """(version, cached value or None) in one round trip; (None, None) when Redis fails.
        `first_look` as in `read_reply`."""
        call = self.read_call(company_id, key)
        try:
            reply = await call.run()
        except (RedisError, OSError) as exc:
            reply = exc
        return self.read_reply(reply, first_look=first_look)

    def read_call(self, company_id: str, key: str) -> ScriptCall:
        """The script call of `read`, to run in a pipeline with others (`read_reply` then)."""
        args = [f"cfg:{self.namespace}:{company_id}:", f":{key}", _initial_version()]
        return ScriptCall(self._read, [self.version_key(company_id)], args)

    def read_reply(self, reply: Any, *, first_look: bool = False) -> tuple[str | None, Any]:
        """What `read` answers for the script's reply (or the Redis error it got).

        `first_look`: the caller falls back to an ordinary read when this one does not find
        the value, so only a hit is final and counted (the fallback counts the miss or the
        error, once)."""
        if isinstance(reply, (RedisError, OSError)):
            if not first_look:
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
            if not first_look:
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

    async def get_or_load(
        self,
        session: AsyncSession,
        company_id: str,
        key: str,
        load: Callable[[], Awaitable[Any]],
    ) -> Any:
        """The cached value of `key`, or `load()`'s (a JSON-able value) filed for the next read."""
        return (await self.lookup(session, company_id, key, load)).value

    async def lookup(
        self,
        session: AsyncSession,
        company_id: str,
        key: str,
        load: Callable[[], Awaitable[Any]],
    ) -> Entry:
        """As `get_or_load`, with the version the value is filed under (see `Entry`)."""
        version, cached = await self.read(company_id, key)
        return await self.settle(session, company_id, key, (version, cached), load)

    async def settle(
        self,
        session: AsyncSession,
        company_id: str,
        key: str,
        read: tuple[str | None, Any],
        load: Callable[[], Awaitable[Any]],
    ) -> Entry:
        """The entry for what `read(company_id, key)` answered: the cached value, or `load()`'s
        (run after that read, as the race demands) filed under the version read."""
        version, cached = read
        if cached is not None:
            return Entry(version, cached)
        value = await load()
        if version is not None and await snapshot_is_current(session):
            await self.write(company_id, version, key, value)
            return Entry(version, value)
        return Entry(None, value)


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


async def scoped_row(
    session: AsyncSession, model: Any, scope: Mapping[str, Any], *, lock: bool = False
) -> Any:
    """The stored config row of one scope (`scope`: column -> value, e.g. level, entity_id,
    policy_type) of the session's company, row-locked with `lock`; None when there is none."""
    statement = sa.select(model).where(
        *(getattr(model, column) == value for column, value in scope.items())
    )
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(statement)).first()


async def upsert_scoped(
    session: AsyncSession,
    model: Any,
    scope: Mapping[str, Any],
    fill: Callable[[Any], None],
) -> tuple[Any, Mapping[str, Any] | None]:
    """Insert or update one scope's row (locked), `fill` setting its values; returns the row
    and its config before (None when the row is new). A concurrent first insert of the same
    scope (UNIQUE) that commits in between turns this into an update of that row."""
    row = await scoped_row(session, model, scope, lock=True)
    if row is None:
        row = model(**scope)
        fill(row)
        try:
            async with session.begin_nested():
                session.add(row)
            return row, None
        except IntegrityError:
            row = await scoped_row(session, model, scope, lock=True)
            assert row is not None
    before = dict(row.config or {})
    fill(row)
    return row, before


def record_change(
    session: AsyncSession,
    change_model: Any,
    scope: Mapping[str, Any],
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    changed_by: str,
) -> None:
    """Add an audit row (who, when, before, after) of one scope's config to the transaction."""
    session.add(
        change_model(
            **scope,
            before=None if before is None else dict(before),
            after=None if after is None else dict(after),
            changed_by=changed_by,
            changed_at=datetime.now(UTC),
        )
    )


def overlay(
    configs: Mapping[str, Mapping[str, Any] | None],
    defaults: Mapping[str, Any],
    *,
    staff_forbidden: frozenset[str] | tuple[str, ...] = (),
    default_level: str = "default",
) -> tuple[dict[str, Any], dict[str, str]]:
    """Overlay the levels' configs key by key, company first, over `defaults`.

    Returns (effective config, provenance: the level each key came from). A key a level does
    not set is inherited; keys in `staff_forbidden` are ignored at staff level even if stored
    (staff may set preferences only). Values are copied, so callers may mutate the result.
    """
    unknown = set(configs) - set(LEVELS)
    if unknown:
        raise InvalidInput(f"level must be one of {', '.join(LEVELS)}", field="level")
    effective: dict[str, Any] = {key: _copy(value) for key, value in defaults.items()}
    provenance = dict.fromkeys(defaults, default_level)
    for level in LEVELS:
        config = configs.get(level)
        if config is None:
            continue
        for key, value in config.items():
            if level == "staff" and key in staff_forbidden:
                continue
            effective[key] = _copy(value)
            provenance[key] = level
    return effective, provenance


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return [_copy(item) for item in value]
    if isinstance(value, dict):
        return {key: _copy(item) for key, item in value.items()}
    return value


def _initial_version() -> str:
    return str(time.time_ns() // 1000)


async def effective(
    session: AsyncSession,
    cache: ConfigCache | None,
    chain: Chain,
    model: Any,
    filters: Mapping[str, Any],
    merge: Callable[[Mapping[str, Mapping[str, Any]]], Any],
    *,
    to_config: Callable[[Any], Mapping[str, Any]] = _config_column,
) -> Any:
    """The merged configuration of a chain: `merge(levels)` from the cache or the database.

    The cache key is the filters' values and the chain, so `merge` must depend on nothing else.
    """
    entry = await effective_entry(session, cache, chain, model, filters, merge, to_config=to_config)
    return entry.value


def cache_key(chain: Chain, filters: Mapping[str, Any]) -> str:
    """The key of a chain's effective value under its company's version."""
    return ":".join([*(str(value) for value in filters.values()), chain.cache_key()])


def predicted_chain(
    company_id: str,
    *,
    branch_id: str | None = None,
    service_id: str | None = None,
    staff_id: str | None = None,
) -> Chain | None:
    """The chain `resolve_chain` returns (unless it refuses the ids), when the ids alone fix it:
    a branch given, or no entity at all. A staff member or service alone: its branch decides."""
    if branch_id or not (service_id or staff_id):
        return Chain(company_id, branch_id or None, service_id or None, staff_id or None)
    return None


async def _resolve_while_reading(
    cache: ConfigCache,
    company_id: str,
    key: str,
    resolving: Awaitable[Chain],
    *,
    first_look: bool = False,
) -> tuple[Chain, tuple[str | None, Any]]:
    """Await `resolving` (the chain's SELECT, which may refuse an id with 404/422) while the
    cache entry under `key` is read: one round trip less. The read always finishes first."""
    reading = asyncio.ensure_future(cache.read(company_id, key, first_look=first_look))
    try:
        chain = await resolving
    finally:
        read = await reading  # never raises: a Redis failure reads as (None, None)
    return chain, read


async def resolve_effective(
    session: AsyncSession,
    cache: ConfigCache | None,
    company_id: str,
    model: Any,
    filters: Mapping[str, Any],
    merge: Callable[[Mapping[str, Mapping[str, Any]]], Any],
    *,
    branch_id: str | None = None,
    service_id: str | None = None,
    staff_id: str | None = None,
    to_config: Callable[[Any], Mapping[str, Any]] = _config_column,
) -> tuple[Chain, Entry]:
    """`resolve_chain` and then `effective_entry`, with one round trip less when it can.

    When the ids fix the chain (`predicted_chain`), the cache read (version and entry) runs
    while the chain's SELECT checks the ids; a refused id still answers its 404/422. On a miss
    the levels are loaded after both, so the version is still read before the config is.
    """
    ids = {"branch_id": branch_id, "service_id": service_id, "staff_id": staff_id}
    predicted = predicted_chain(company_id, **ids)
    if cache is None or predicted is None or predicted.levels() == [("company", company_id)]:
        chain = await resolve_chain(session, company_id, **ids)
        return chain, await effective_entry(
            session, cache, chain, model, filters, merge, to_config=to_config
        )
    key = cache_key(predicted, filters)
    chain, read = await _resolve_while_reading(
        cache, company_id, key, resolve_chain(session, company_id, **ids)
    )
    if chain != predicted:  # cannot happen (see predicted_chain); never serve another chain
        return chain, await effective_entry(
            session, cache, chain, model, filters, merge, to_config=to_config
        )

    async def load() -> Any:
        return merge(await load_levels(session, model, chain, filters, to_config))

    return chain, await cache.settle(session, company_id, key, read, load)


async def resolve_effective_warm(
    reads: RawPool,
    cache: ConfigCache,
    company_id: str,
    filters: Mapping[str, Any],
    ids: Mapping[str, str | None],
) -> tuple[Chain, Entry] | None:
    """`resolve_effective` when the value is cached, through raw reads (the lean routes'):
    the chain (its 404/422 as there) and the cached entry; None on a miss or when Redis
    fails, and the caller resolves in a session instead (nothing has happened by then, and
    only that resolution counts the miss)."""
    predicted = predicted_chain(company_id, **ids)
    if predicted is not None:
        key = cache_key(predicted, filters)
        resolving = resolve_chain_raw(reads, company_id, ids)
        chain, (version, cached) = await _resolve_while_reading(
            cache, company_id, key, resolving, first_look=True
        )
        if chain != predicted:  # cannot happen (see predicted_chain)
            return None
    else:
        chain = await resolve_chain_raw(reads, company_id, ids)
        key = cache_key(chain, filters)
        version, cached = await cache.read(company_id, key, first_look=True)
    if version is None or cached is None:
        return None
    return chain, Entry(version, cached)


async def effective_entry(
    session: AsyncSession,
    cache: ConfigCache | None,
    chain: Chain,
    model: Any,
    filters: Mapping[str, Any],
    merge: Callable[[Mapping[str, Mapping[str, Any]]], Any],
    *,
    to_config: Callable[[Any], Mapping[str, Any]] = _config_column,
) -> Entry:
    """As `effective`, with the version the value is filed under (for a `Memo`)."""

    async def load() -> Any:
        return merge(await load_levels(session, model, chain, filters, to_config))

    if cache is None:
        return Entry(None, await load())
    return await cache.lookup(session, chain.company_id, cache_key(chain, filters), load)
