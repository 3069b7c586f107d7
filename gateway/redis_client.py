"""Opens the one Redis connection pool the gateway shares: standalone or Cluster, TCP or TLS."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
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
