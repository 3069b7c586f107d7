"""Lua scripts run by EVALSHA, each loaded once per client (and again after a Redis restart).

The one header convention: a script's text opens with a comment block that says what it does,
then one line per key (`-- KEYS[1] ...`), per argument (`-- ARGV[1] ...`) and what it returns
(`-- returns ...`); `LuaScript` refuses a text without it, so the contract of every script is
read where it is defined.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis import exceptions as redis_errors

from gateway.shared_state.client import AnyRedis

ScriptArg = bytes | str | int | float

_HEADER_PARTS = {"KEYS[..]": r"KEYS\[", "ARGV[..]": r"ARGV\[", "returns": r"returns\b"}


def check_header(text: str) -> None:
    """Raise ValueError unless `text` opens with the KEYS / ARGV / returns comment block."""
    header = []
    for line in text.strip().splitlines():
        if not line.startswith("--"):
            break
        header.append(line[2:].strip())
    missing = [
        label
        for label, pattern in _HEADER_PARTS.items()
        if not any(re.match(pattern, line, re.IGNORECASE) for line in header)
    ]
    if missing:
        raise ValueError(f"a Lua script must open with its header comment; missing: {', '.join(missing)}")


class LuaScript:
    """A script run by EVALSHA; loaded once (and again after a Redis restart), one load at a time.

    redis-py's own `register_script` reloads from every task that sees NOSCRIPT at once, which
    its Cluster client does not survive (a connection used while being reset). `ready` returns the
    client once it may take commands (a Cluster's slot map loaded: see `SharedRedis.ready`).
    """

    def __init__(self, ready: Callable[[], Awaitable[AnyRedis]], text: str) -> None:
        check_header(text)
        self._ready = ready
        self._text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()
        self._lock = asyncio.Lock()
        self._loads = 0

    async def __call__(self, keys: Sequence[str], args: Sequence[ScriptArg]) -> Any:
        """Run the script: one round trip unless Redis has forgotten it."""
        loads = self._loads
        redis = await self._ready()
        if loads == 0:
            # Load before the first use, once: this also lets a Cluster client discover its
            # slots from one task instead of from every concurrent first caller.
            await self._load(redis, loads)
            loads = self._loads  # a NOSCRIPT after this load must load it again
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except redis_errors.NoScriptError:
            await self._load(redis, loads)
            return await redis.evalsha(self.sha, len(keys), *keys, *args)

    async def _load(self, redis: AnyRedis, seen: int) -> None:
        async with self._lock:
            if self._loads == seen:
                await redis.script_load(self._text)
                self._loads += 1
