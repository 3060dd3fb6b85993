"""The in-process key cache: emptied when the auth generation moves, bounded without Redis,
and never refilled with a value read before a clear."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from shared.redis.connection import free_port
from shared.security.api_keys import VerifiedKey, _TTLCache, company_cache, key_cache
from shared.web.auth_revocation import (
    GENERATION_KEY,
    RevocationWatcher,
    publish_auth_change,
)

KEY = VerifiedKey("key-1", "company-1", ("admin",), None)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client: Redis = Redis.from_url(redis_url, socket_timeout=2)
    yield client
    await client.aclose()


def test_a_value_read_before_a_clear_is_not_filed_after_it() -> None:
    cache: _TTLCache[VerifiedKey] = _TTLCache()
    epoch = cache.epoch  # a request starts its database read
    cache.clear()  # meanwhile a revocation is published
    cache.put("digest", KEY, 30, epoch)
    assert cache.get("digest") is None
    cache.put("digest", KEY, 30, cache.epoch)
    assert cache.get("digest") == KEY


async def test_the_watcher_empties_the_caches_when_the_generation_moves(redis: Redis) -> None:
    watcher = RevocationWatcher(redis, poll_s=0.05)
    await watcher.poll_once()  # learns the current generation
    key_cache.put("digest", KEY, 30)
    company_cache.put("company-1", True, 30)
    await watcher.poll_once()
    assert key_cache.get("digest") == KEY, "an unchanged generation keeps the cache"

    await redis.incr(GENERATION_KEY)  # another process published
    await watcher.poll_once()
    assert key_cache.get("digest") is None
    assert company_cache.get("company-1") is None


async def test_publishing_empties_this_process_at_once_and_moves_the_generation(
    redis: Redis,
) -> None:
    before = int(await redis.get(GENERATION_KEY) or 0)
    key_cache.put("digest", KEY, 30)
    assert await publish_auth_change(redis) is True
    assert key_cache.get("digest") is None
    assert int(await redis.get(GENERATION_KEY) or 0) == before + 1


async def test_without_redis_cached_keys_live_at_most_the_offline_ttl() -> None:
    unreachable: Redis = Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.2, socket_connect_timeout=0.2
    )
    watcher = RevocationWatcher(unreachable, poll_s=0.05, offline_ttl_s=0.5)
    try:
        key_cache.put("digest", KEY, 30)
        await watcher.poll_once()
        assert key_cache.get("digest") == KEY, "kept for a while without Redis"
        await asyncio.sleep(0.6)
        await watcher.poll_once()
        assert key_cache.get("digest") is None, "but not for the 30 s TTL"
        assert await publish_auth_change(unreachable) is False
    finally:
        await unreachable.aclose()


async def test_the_running_watcher_polls_by_itself(redis: Redis) -> None:
    watcher = RevocationWatcher(redis, poll_s=0.05)
    await watcher.start()
    try:
        await asyncio.sleep(0.2)
        key_cache.put("digest", KEY, 30)
        await redis.incr(GENERATION_KEY)
        await asyncio.sleep(0.2)
        assert key_cache.get("digest") is None
    finally:
        await watcher.stop()
