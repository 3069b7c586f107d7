"""The Redis client the gateway shares (standalone or Cluster, TCP or TLS) and what its failure looks like."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import ConnectionPool

from gateway import errors

AnyRedis = aioredis.Redis | RedisCluster

# Connections per Redis node. Standalone: callers beyond this wait (up to POOL_WAIT_S) for a free
# connection instead of failing. Cluster: redis-py's cluster pools cannot wait, so they are larger.
POOL_SIZE = 256
CLUSTER_POOL_SIZE = 2048
POOL_WAIT_S = 10.0

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


class RedisUnavailable(errors.Unavailable):
    """The one "shared state unavailable" error: Redis is unreachable (or known to be, and so was
    not asked). Every shared-state backend raises it; the `Fallback*` wrappers catch it, and one
    that reaches a caller is UNAVAILABLE / SHARED_STATE_UNAVAILABLE with a short RetryInfo."""

    default_reason = "SHARED_STATE_UNAVAILABLE"

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after=1.0)


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


async def drop_idle_connections(redis: AnyRedis) -> None:
    """Close pooled connections that sat idle through an outage, so none is reused dead or hung."""
    if isinstance(redis, RedisCluster):
        for node in redis.get_nodes():
            await node.disconnect_free_connections()
    else:
        await redis.connection_pool.disconnect(inuse_connections=False)


def own_connection(redis: AnyRedis) -> tuple[aioredis.Redis, bool]:
    """A plain client for a long-lived subscription, and whether it is the caller's to close.

    In a cluster a plain PUBLISH reaches the subscribers of every node, so one connection to any
    node will do. redis-py's ClusterPubSub (8.1) borrows the node's command connections and raced
    with concurrent commands in our tests (AttributeError in the handshake), so a subscriber gets
    its own client to a random primary instead. The cluster's slot map must be loaded first.
    """
    if not isinstance(redis, RedisCluster):
        return redis, False
    node = redis.get_random_node()
    pool = ConnectionPool(connection_class=node.connection_class, **node.connection_kwargs)
    return aioredis.Redis(connection_pool=pool), True


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task that talks to Redis and wait until it has ended.

    redis-py may swallow a cancellation (inside asyncio.wait_for), so cancel again until it ends.
    """
    while task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
