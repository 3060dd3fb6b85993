"""The effective value of a target: its chain's levels merged, from the cache or the database.

One implementation for every caller: a session it holds, or `Reads` that answer from the raw
pool on MariaDB and open a session only when the value must be loaded (a miss). When the ids
alone fix the chain (`predicted_chain`), the cache read runs while the chain's SELECT checks
the ids: one round trip less.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared.hierarchy.cache import ConfigCache, Entry, Send
from shared.hierarchy.chain import Chain, cache_key, predicted_chain
from shared.hierarchy.queries import config_column, load_levels, resolve_chain
from shared.hierarchy.reads import Reads

Merge = Callable[[Mapping[str, Mapping[str, Any]]], Any]
ToConfig = Callable[[Any], Mapping[str, Any]]


async def effective(
    source: Reads | AsyncSession,
    cache: ConfigCache | None,
    chain: Chain,
    model: Any,
    filters: Mapping[str, Any],
    merge: Merge,
    *,
    to_config: ToConfig = config_column,
) -> Any:
    """The merged configuration of a chain: `merge(levels)` from the cache or the database.

    The cache key is the filters' values and the chain, so `merge` must depend on nothing else.
    """
    entry = await effective_entry(source, cache, chain, model, filters, merge, to_config=to_config)
    return entry.value


async def effective_entry(
    source: Reads | AsyncSession,
    cache: ConfigCache | None,
    chain: Chain,
    model: Any,
    filters: Mapping[str, Any],
    merge: Merge,
    *,
    to_config: ToConfig = config_column,
    send: Send | None = None,
) -> Entry:
    """As `effective`, with the version the value is filed under (for a `Memo`); `send` as in
    `ConfigCache.read`."""
    reads = Reads.of(source, chain.company_id)
    load = _loader(reads, chain, model, filters, merge, to_config)
    if cache is None:
        return Entry(None, await load())
    key = cache_key(chain, filters)
    read = await cache.read(chain.company_id, key, send=send)
    return await cache.settle(reads, key, read, load)


async def resolve_effective(
    source: Reads | AsyncSession,
    cache: ConfigCache | None,
    company_id: str,
    model: Any,
    filters: Mapping[str, Any],
    merge: Merge,
    *,
    branch_id: str | None = None,
    service_id: str | None = None,
    staff_id: str | None = None,
    to_config: ToConfig = config_column,
) -> tuple[Chain, Entry]:
    """`resolve_chain` and then `effective_entry`, with one round trip less when it can.

    When the ids fix the chain (`predicted_chain`), the cache read (version and entry) runs
    while the chain's SELECT checks the ids; a refused id still answers its 404/422. On a miss
    the levels are loaded after both, so the version is still read before the config is.
    """
    reads = Reads.of(source, company_id)
    ids = {"branch_id": branch_id, "service_id": service_id, "staff_id": staff_id}
    predicted = predicted_chain(company_id, **ids)
    if cache is None or predicted is None or predicted.levels() == [("company", company_id)]:
        chain = await resolve_chain(reads, company_id, **ids)
        entry = await effective_entry(
            reads, cache, chain, model, filters, merge, to_config=to_config
        )
        return chain, entry
    key = cache_key(predicted, filters)
    reading = asyncio.ensure_future(cache.read(company_id, key))
    try:
        chain = await resolve_chain(reads, company_id, **ids)
    finally:
        read = await reading  # never raises: a Redis failure reads as (None, None)
    if chain != predicted:  # cannot happen (see predicted_chain); never serve another chain
        entry = await effective_entry(
            reads, cache, chain, model, filters, merge, to_config=to_config
        )
        return chain, entry
    load = _loader(reads, chain, model, filters, merge, to_config)
    return chain, await cache.settle(reads, key, read, load)


def _loader(
    reads: Reads,
    chain: Chain,
    model: Any,
    filters: Mapping[str, Any],
    merge: Merge,
    to_config: ToConfig,
) -> Callable[[], Awaitable[Any]]:
    async def load() -> Any:
        return merge(await load_levels(await reads.session(), model, chain, filters, to_config))

    return load
