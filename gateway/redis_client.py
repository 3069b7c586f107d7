"""The one Redis connection pool the gateway shares (standalone or Cluster, TCP or TLS), and its health."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster

AnyRedis = aioredis.Redis | RedisCluster

# Connections per Redis node. Standalone: callers beyond this wait (up to POOL_WAIT_S) for a free
# connection instead of failing. Cluster: redis-py's cluster pools cannot wait, so they are larger.
POOL_SIZE = 256
CLUSTER_POOL_SIZE = 2048
POOL_WAIT_S = 10.0


def connect_redis(url: str, *, password: str | None = None, **options: Any) -> AnyRedis:
    """A client for `url`: `redis://` or `rediss://` (TLS), with ACL user and password in the URL.

    `password` (e.g. from REDIS_PASSWORD) is used only when the URL carries none.

    `?cluster=1` (or the scheme `redis+cluster://` / `rediss+cluster://`) selects Redis Cluster;
    any node of the cluster may be named.
    """
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    cluster = parts.scheme.endswith("+cluster") or query.pop("cluster", ["0"])[0] in ("1", "true", "yes")
    scheme = parts.scheme.removesuffix("+cluster")
    clean = urlunsplit((scheme, parts.netloc, parts.path, urlencode(query, doseq=True), ""))
    if password and not parts.password:
        options["password"] = password
    options.setdefault("socket_timeout", 5.0)
    options.setdefault("socket_connect_timeout", 2.0)
    if cluster:
        options.setdefault("max_connections", CLUSTER_POOL_SIZE)
        return RedisCluster.from_url(clean, **options)
    pool = aioredis.BlockingConnectionPool.from_url(
        clean, max_connections=POOL_SIZE, timeout=POOL_WAIT_S, **options
    )
    return aioredis.Redis.from_pool(pool)


# What "Redis is unreachable" looks like through redis-py (not a script or data error): refused or
# dropped connections, socket and asyncio timeouts, a Cluster without a usable slot map.
REDIS_UNREACHABLE: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ClusterError,
    redis_errors.RedisClusterException,
    OSError,
    TimeoutError,
)

# One shared-state round trip should take milliseconds; this long means the server is gone or hung.
OP_TIMEOUT_S = 0.5
PROBE_INTERVAL_S = 1.0

log = logging.getLogger(__name__)


class RedisUnavailable(Exception):
    """Redis is unreachable (or known to be, and so was not asked)."""


class RedisHealth:
    """Whether one Redis client answers: tripped by any layer's fault, cleared by one background probe.

    Dedupe, the operation tracker and the pool lock share one client, so they share one health
    (`health_of`): the first layer to see Redis fail spares the others from paying the timeout,
    none of them touches Redis while it is down, and one PING every `probe_interval_s`
    (off every caller's path) brings them all back.
    """

    def __init__(
        self,
        redis: AnyRedis,
        *,
        op_timeout_s: float = OP_TIMEOUT_S,
        probe_interval_s: float = PROBE_INTERVAL_S,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._redis = redis
        self.op_timeout_s = op_timeout_s
        self._probe_interval_s = probe_interval_s
        self._sleep = sleep
        self._down = False
        self._probe: asyncio.Task[None] | None = None
        self.trips = 0

    @property
    def down(self) -> bool:
        """True from the first fault until a probe gets an answer."""
        return self._down

    @contextlib.asynccontextmanager
    async def guard(self, *, within_s: float | None = None) -> AsyncIterator[None]:
        """Bound a block of Redis calls by the op timeout (and `within_s`, the caller's time left).

        Raises RedisUnavailable without running the block while Redis is down, and after a fault
        or the op timeout (which trip the health). Running out of the caller's own time is not a
        Redis fault: it raises RedisUnavailable without tripping.
        """
        if self._down:
            raise RedisUnavailable("Redis is unreachable; not asked until a probe answers")
        limit = self.op_timeout_s if within_s is None else max(0.0, min(self.op_timeout_s, within_s))
        try:
            async with asyncio.timeout(limit):
                yield
        except REDIS_UNREACHABLE as e:
            if not (isinstance(e, TimeoutError) and limit < self.op_timeout_s):
                self.trip(e)
            raise RedisUnavailable(f"Redis is unreachable: {e!r}") from e

    def trip(self, cause: BaseException) -> None:
        """Mark Redis down and start the probe (idempotent)."""
        if not self._down:
            self.trips += 1
            log.warning("redis unreachable (%r); shared state skipped until it answers", cause)
        self._down = True
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._probe_until_back(), name="redis-probe")

    async def close(self) -> None:
        """Stop the probe (a later fault starts it again)."""
        probe, self._probe = self._probe, None
        # redis-py may swallow a cancellation (inside asyncio.wait_for), so insist until it ends.
        while probe is not None and not probe.done():
            probe.cancel()
            await asyncio.wait({probe}, timeout=0.5)

    async def _probe_until_back(self) -> None:
        while True:
            await self._sleep(self._probe_interval_s)
            try:
                async with asyncio.timeout(self.op_timeout_s):
                    await self._redis.ping()
                    # Connections idle through the outage may be dead or hung: drop them.
                    if isinstance(self._redis, RedisCluster):
                        for node in self._redis.get_nodes():
                            await node.disconnect_free_connections()
                    else:
                        await self._redis.connection_pool.disconnect(inuse_connections=False)
            except REDIS_UNREACHABLE:
                continue
            self._down = False
            log.warning("redis reachable again; shared state resumed")
            return


_HEALTH: weakref.WeakKeyDictionary[Any, RedisHealth] = weakref.WeakKeyDictionary()


def health_of(redis: AnyRedis) -> RedisHealth:
    """The one RedisHealth of a client, shared by every layer that uses that client."""
    health = _HEALTH.get(redis)
    if health is None:
        health = _HEALTH[redis] = RedisHealth(redis)
    return health
