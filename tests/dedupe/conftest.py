"""Fixtures for the dedupe suites: one harness per backend, real Redis processes only."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from gateway.clock import SYSTEM_CLOCK
from gateway.dedupe import Deduplicator, FallbackDeduplicator, LocalDeduplicator, RedisDeduplicator
from gateway.settings import DedupeSettings
from gateway.shared_state import SharedRedis, connect_redis
from tests.support.clock import ManualClock


@dataclass
class Harness:
    """Builds stores of one backend; `replica` gives another replica sharing the same state."""

    backend: str
    url: str = ""
    clock: ManualClock = field(default_factory=ManualClock)
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}")
    stores: list[Deduplicator] = field(default_factory=list)
    clients: list[SharedRedis] = field(default_factory=list)

    def settings(self, **overrides: Any) -> DedupeSettings:
        return replace(DedupeSettings(key_prefix=self.prefix), **overrides)

    def make(self, *, dead: bool = False, **overrides: Any) -> Any:
        """A new store (a new replica, for Redis) with the given settings.

        In-process, stores read the manual clock; Redis stores sleep on real time, as Redis
        expires their keys. A `dead` store's sleeps never end: it never renews a lease (a process
        that died) and, on Redis, never resubscribes. The `fallback` backend is the Redis store
        in the `FallbackDeduplicator` wrapper production runs it in.
        """
        settings = self.settings(**overrides)
        store: Any
        if self.backend == "local":
            store = LocalDeduplicator(
                settings=settings, clock=self.clock.never_waking() if dead else self.clock
            )
        else:
            shared = SharedRedis(connect_redis(self.url))
            self.clients.append(shared)
            clock = self.clock.never_waking() if dead else SYSTEM_CLOCK
            store = RedisDeduplicator(shared=shared, settings=settings, clock=clock)
            if self.backend == "fallback":
                store = FallbackDeduplicator(inner=store)
        self.stores.append(store)
        return store

    def replica(self, store: Any, **overrides: Any) -> Any:
        """Another replica sharing `store`'s state (in-process: the same store)."""
        return store if self.backend == "local" else self.make(**overrides)

    async def elapse(self, seconds: float) -> None:
        """Let lease / retention time pass: the manual clock in-process, real time in Redis."""
        if self.backend == "local":
            await self.clock.advance(seconds)
        else:
            await asyncio.sleep(seconds)

    async def aclose(self) -> None:
        for store in self.stores:
            await store.close()
        for shared in self.clients:
            await shared.close()


@pytest.fixture(params=["local", "redis", "fallback", "cluster"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """Every contract test runs in-process, on a standalone redis-server (bare, and wrapped as
    production runs it), and on a Redis Cluster."""
    backend = request.param
    url = ""
    if backend in ("redis", "fallback"):
        url = request.getfixturevalue("redis_url")
    elif backend == "cluster":
        url = request.getfixturevalue("redis_cluster_proc").url
    h = Harness(backend=backend, url=url)
    yield h
    await h.aclose()
