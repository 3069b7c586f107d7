"""The one Redis connection pool the gateway shares (standalone or Cluster, TCP or TLS), and its health."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster

from gateway.clock import SYSTEM_CLOCK, Clock

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

# One shared-state round trip takes milliseconds. When calls are waiting and none has got an answer
# for OP_TIMEOUT_S of time in which the event loop was free to take one, the server is gone or hung.
# Otherwise Redis (or this process) is only busy, and a call may wait up to BUSY_TIMEOUT_S.
OP_TIMEOUT_S = 0.5
BUSY_TIMEOUT_S = 2.0
PROBE_INTERVAL_S = 1.0
_TICK_S = 0.05

log = logging.getLogger(__name__)


class RedisUnavailable(Exception):
    """Redis is unreachable (or known to be, and so was not asked)."""


class RedisHealth:
    """Whether one Redis client answers: tripped by any layer's fault, cleared by one background probe.

    Dedupe, the operation tracker and the pool lock share one client, so they share one health
    (`health_of`): the first layer to see Redis fail spares the others from paying the timeout,
    none of them touches Redis while it is down, and one PING every `probe_interval_s`
    (off every caller's path) brings them all back. `clock` paces that probe; the silence watch
    and the cut-offs run on the event loop's timer, as they bound real round trips.
    """

    def __init__(
        self,
        redis: AnyRedis,
        *,
        op_timeout_s: float = OP_TIMEOUT_S,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        probe_interval_s: float = PROBE_INTERVAL_S,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._redis = redis
        self.op_timeout_s = op_timeout_s
        self.busy_timeout_s = max(busy_timeout_s, op_timeout_s)
        self._waiting: set[asyncio.Timeout] = set()
        self._silence_s = 0.0
        self._monitor: asyncio.TimerHandle | None = None
        self._probe_interval_s = probe_interval_s
        self._clock = clock
        self._down = False
        self._probe: asyncio.Task[None] | None = None
        self.trips = 0

    @property
    def down(self) -> bool:
        """True from the first fault until a probe gets an answer."""
        return self._down

    @contextlib.asynccontextmanager
    async def guard(self, *, within_s: float | None = None) -> AsyncIterator[None]:
        """Bound a block of Redis calls; a fault, or silence from Redis, trips the health.

        Every waiting block is cut off once Redis has been silent (see `_watch`) for
        `op_timeout_s`: a hung or vanished server. A busy Redis (or a congested event loop)
        gets up to `busy_timeout_s`; `within_s` (the caller's time left) caps both. Raises
        RedisUnavailable: at once while Redis is down, and after a fault or a cut-off. Running
        out of the caller's own time is not a Redis fault and does not trip the health.
        """
        if self._down:
            raise RedisUnavailable("Redis is unreachable; not asked until a probe answers")
        loop = asyncio.get_running_loop()
        cap = self.busy_timeout_s if within_s is None else max(0.0, min(self.busy_timeout_s, within_s))
        try:
            async with asyncio.timeout(cap) as scope:
                self._waiting.add(scope)
                if self._monitor is None:
                    self._silence_s = 0.0
                    self._monitor = loop.call_at(loop.time() + _TICK_S, self._watch, loop.time() + _TICK_S)
                try:
                    yield
                finally:
                    self._waiting.discard(scope)
        except REDIS_UNREACHABLE as e:
            callers_time = isinstance(e, TimeoutError) and not self._down and cap < self.busy_timeout_s
            if not callers_time:
                self.trip(e)
            raise RedisUnavailable(f"Redis is unreachable: {e!r}") from e
        self._silence_s = 0.0  # an answer

    def _watch(self, due: float) -> None:
        """Count silence while blocks wait: only the part of each tick the loop was free for."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if not self._waiting:
            self._monitor = None
            return
        self._silence_s += max(0.0, _TICK_S - (now - due))  # a late tick: the loop was busy
        if self._silence_s >= self.op_timeout_s:
            self._monitor = None
            self.trip(TimeoutError(f"no answer from Redis in {self.op_timeout_s}s"))
            for scope in list(self._waiting):
                scope.reschedule(now)
            return
        self._monitor = loop.call_at(now + _TICK_S, self._watch, now + _TICK_S)

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
        if self._monitor is not None:
            self._monitor.cancel()
            self._monitor = None
        probe, self._probe = self._probe, None
        # redis-py may swallow a cancellation (inside asyncio.wait_for), so insist until it ends.
        while probe is not None and not probe.done():
            probe.cancel()
            await asyncio.wait({probe}, timeout=0.5)

    async def _probe_until_back(self) -> None:
        while True:
            await self._clock.sleep(self._probe_interval_s)
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
