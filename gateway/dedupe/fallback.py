"""Degraded mode: with Redis unreachable, run produce directly and probe Redis off the hot path.

Without the shared store, Toloka's own operation-id idempotency is what prevents a second
creation: a duplicate re-sends the same operation_id and Toloka answers with the existing
operation. Mismatch detection and replays are unavailable while degraded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from gateway.call import Call
from gateway.dedupe.claiming import Sleep
from gateway.dedupe.records import DedupeBackendUnavailable
from gateway.dedupe.redis_store import RedisDeduplicator
from gateway.dedupe.store import DedupeCounters

log = logging.getLogger(__name__)


class FallbackDeduplicator:
    """Delegates to a `RedisDeduplicator`; while Redis is unreachable, runs produce directly.

    The first backend failure flips `degraded`; from then on no call touches Redis and one
    background probe pings it every `probe_interval_s` until it answers.
    """

    def __init__(
        self, *, inner: RedisDeduplicator, probe_interval_s: float = 1.0, sleep: Sleep = asyncio.sleep
    ) -> None:
        self._inner = inner
        self._probe_interval_s = probe_interval_s
        self._sleep = sleep
        self._prober: asyncio.Task[None] | None = None
        self._degraded = False

    @property
    def counters(self) -> DedupeCounters:
        """The inner store's counters; `bypassed` counts calls run without dedupe."""
        return self._inner.counters

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable."""
        return self._degraded

    async def run(
        self,
        key: str,
        fingerprint: str,
        produce: Callable[[], Awaitable[bytes]],
        *,
        call: Call,
    ) -> tuple[bytes, bool]:
        """See `Deduplicator.run`; degraded calls return `(produce(), False)`."""
        if not self._degraded:
            try:
                return await self._inner.run(key, fingerprint, produce, call=call)
            except DedupeBackendUnavailable as e:
                # Raised only before this call's produce ran, so running it now is not a repeat.
                self._enter_degraded(e)
        self._inner.counters.bypassed += 1
        return await produce(), False

    async def close(self) -> None:
        """Stop the probe and the inner store."""
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
            self._prober = None
        await self._inner.close()

    def _enter_degraded(self, cause: Exception) -> None:
        if not self._degraded:
            log.warning("dedupe: Redis unreachable, degraded to Toloka's idempotency: %s", cause)
        self._degraded = True
        if self._prober is None or self._prober.done():
            self._prober = asyncio.get_running_loop().create_task(self._probe())

    async def _probe(self) -> None:
        while True:
            await self._sleep(self._probe_interval_s)
            try:
                await self._inner.ping()
            except DedupeBackendUnavailable:
                continue
            self._degraded = False
            log.warning("dedupe: Redis reachable again, degraded mode cleared")
            return
