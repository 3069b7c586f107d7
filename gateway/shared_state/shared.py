"""`SharedRedis`: the one client, its health and its readiness, handed to every shared-state backend."""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio.cluster import RedisCluster

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.shared_state.client import AnyRedis
from gateway.shared_state.health import RedisHealth
from gateway.shared_state.scripts import LuaScript


class SharedRedis:
    """What the composition root builds once from REDIS_URL and passes down.

    Owns the client and its `RedisHealth`: `close()` stops the probe and closes the client, once,
    after every backend has closed. `ready()` is the one guard of a Cluster's first use.
    """

    def __init__(
        self, redis: AnyRedis, *, health: RedisHealth | None = None, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.redis = redis
        self.health = health or RedisHealth(redis, clock=clock)
        self._ready = not isinstance(redis, RedisCluster)
        self._ready_lock = asyncio.Lock()

    async def ready(self) -> AnyRedis:
        """The client, once it may take concurrent commands.

        redis-py's RedisCluster, hit by many concurrent commands before its first initialize()
        completes, rebuilds nodes under running commands (AttributeError on a None writer); one
        initialize() before any command avoids it. A failure leaves it to the next caller.
        """
        if not self._ready:
            async with self._ready_lock:
                if not self._ready and isinstance(self.redis, RedisCluster):
                    await self.redis.initialize()
                self._ready = True
        return self.redis

    def script(self, text: str) -> LuaScript:
        """A Lua script on this client (its text must open with the header comment)."""
        return LuaScript(self.ready, text)

    async def close(self) -> None:
        """Stop the health's probe and close the client."""
        await self.health.close()
        with contextlib.suppress(Exception):
            await self.redis.aclose()
