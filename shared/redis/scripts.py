"""Lua script calls that can share one round trip with others (a pipeline of EVALSHA).

A hot path that needs two scripts (the rate limit's hit and the config cache's read, say)
pays one round trip instead of two: each owner builds its `ScriptCall` and interprets its
reply, `run_pipelined` sends them together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError


@dataclass(frozen=True)
class ScriptCall:
    """One call of a registered Lua script: run alone, or with others in one round trip."""

    script: AsyncScript
    keys: list[Any]
    args: list[Any]

    async def run(self) -> Any:
        return await self.script(keys=self.keys, args=self.args)


async def run_pipelined(redis: Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    """The calls' replies from one round trip (EVALSHA in a non-transactional pipeline).

    A reply is the call's result or its error; a script Redis does not know (after a restart
    or a flush) is loaded and that call alone run again, as a lone script call does.
    """
    pipe = redis.pipeline(transaction=False)
    for call in calls:
        pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
    replies: list[Any] = await pipe.execute(raise_on_error=False)
    for index, (call, reply) in enumerate(zip(calls, replies, strict=True)):
        if isinstance(reply, NoScriptError):
            try:
                replies[index] = await call.run()
            except (RedisError, OSError) as exc:
                replies[index] = exc
    return replies
