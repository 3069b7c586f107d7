"""Degraded mode: with Redis unreachable, run produce directly until Redis answers again.

Without the shared store, Toloka's own operation-id idempotency is what prevents a second
creation of an async create: a duplicate re-sends the same operation_id and Toloka answers with
the existing operation. Toloka does not dedupe synchronous creates, and another replica could be
sending the same one, so a produce that asks to mark its claim sent (`HeldClaim.sending`) is
refused before anything leaves. Mismatch detection and replays are unavailable while degraded.
"""

from __future__ import annotations

import logging

from gateway import errors
from gateway.call import Call
from gateway.dedupe.redis_store import RedisDeduplicator
from gateway.dedupe.store import DedupeCounters, Produce
from gateway.shared_state import RedisUnavailable

log = logging.getLogger(__name__)


class FallbackDeduplicator:
    """Delegates to a `RedisDeduplicator`; while Redis is unreachable, runs produce directly.

    The first backend failure trips the inner store's `RedisHealth` (shared with every layer on
    the same client); from then on no call touches Redis, and the health's one background probe
    clears `degraded` when Redis answers.
    """

    def __init__(self, *, inner: RedisDeduplicator) -> None:
        self._inner = inner

    @property
    def counters(self) -> DedupeCounters:
        """The inner store's counters; `bypassed` counts calls run without dedupe."""
        return self._inner.counters

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable."""
        return self._inner.health.down

    async def run(
        self,
        key: str,
        fingerprint: str,
        produce: Produce,
        *,
        call: Call,
    ) -> tuple[bytes, bool]:
        """See `Deduplicator.run`; degraded calls return `(produce(), False)`."""
        if not self.degraded:
            try:
                return await self._inner.run(key, fingerprint, produce, call=call)
            except RedisUnavailable as e:
                # Raised only before this call's produce ran, so running it now is not a repeat.
                log.warning("dedupe: Redis unreachable, running operation_id %s without it: %s", key, e)
        self._inner.counters.bypassed += 1
        return await produce(_UNSHARED), False

    async def close(self) -> None:
        """Close the inner store (the health belongs to its owner)."""
        await self._inner.close()


class _UnsharedClaim:
    """The claim of a degraded call: nothing can be marked, so nothing unrepeatable may leave."""

    async def sending(self) -> None:
        """Refuse: without the shared store another replica may be sending the same request."""
        raise errors.shared_state_unavailable(
            "synchronous creates are refused while the gateway's shared state (Redis) is unreachable: "
            "Toloka does not dedupe them, so the gateway could not keep them from running twice; "
            "nothing was sent. Retry later, or use async_mode"
        )


_UNSHARED = _UnsharedClaim()
