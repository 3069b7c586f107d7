"""Lua scripts run by EVALSHA, each loaded once per client (and again after a Redis restart).

Every script keeps its KEYS / ARGV / returns header comment next to its text, where it is defined.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

from redis import exceptions as redis_errors

from gateway.redis_client import AnyRedis

ScriptArg = bytes | str | int | float


class LuaScript:
    """A script run by EVALSHA; loaded once (and again after a Redis restart), one load at a time.

    redis-py's own `register_script` reloads from every task that sees NOSCRIPT at once, which
    its Cluster client does not survive (a connection used while being reset).
    """

    def __init__(self, redis: AnyRedis, text: str) -> None:
        self._redis = redis
        self._text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()
        self._lock = asyncio.Lock()
        self._loads = 0

    async def __call__(self, keys: Sequence[str], args: Sequence[ScriptArg]) -> Any:
        """Run the script: one round trip unless Redis has forgotten it."""
        loads = self._loads
        if loads == 0:
            # Load before the first use, once: this also lets a Cluster client discover its
            # slots from one task instead of from every concurrent first caller.
            await self._load(loads)
        try:
            return await self._redis.evalsha(self.sha, len(keys), *keys, *args)
        except redis_errors.NoScriptError:
            await self._load(loads)
            return await self._redis.evalsha(self.sha, len(keys), *keys, *args)

    async def _load(self, seen: int) -> None:
        async with self._lock:
            if self._loads == seen:
                await self._redis.script_load(self._text)
                self._loads += 1
