"""The Deduplicator protocol: one execution per operation_id across callers and replicas."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.call import Call


@dataclass
class DedupeCounters:
    """Plain counters for metrics; each backend increments its own instance."""

    claims: int = 0  # produce started (first calls and takeovers)
    replays: int = 0  # a stored outcome answered without running produce
    waits: int = 0  # a duplicate found the key in flight and waited
    mismatches: int = 0  # same key, different fingerprint
    takeovers: int = 0  # a waiter claimed the key after the holder's lease lapsed or it released
    releases: int = 0  # a claim given up without storing (transient failure, cancel, oversize outcome)
    oversize: int = 0  # an outcome larger than max_stored_bytes, released instead of stored
    lost_leases: int = 0  # a renewal found the claim gone or taken over
    backend_errors: int = 0  # a shared-backend call failed
    bypassed: int = 0  # degraded mode ran produce without dedupe


class Deduplicator(Protocol):
    """Runs `produce` once per key; duplicates get the first outcome."""

    async def run(
        self,
        key: str,
        fingerprint: str,
        produce: Callable[[], Awaitable[bytes]],
        *,
        call: Call,
    ) -> tuple[bytes, bool]:
        """Return `(outcome, replayed)`.

        The first call for `key` claims it (with a renewed lease) and runs `produce`.
        Concurrent duplicates wait for its outcome until `call.deadline`; later ones get the
        stored outcome. A different `fingerprint` under the same key raises
        `errors.AlreadyExists`. A `GatewayError` raised by `produce` whose class is
        `definitive` is stored and re-raised to every duplicate; any other failure releases
        the claim and propagates.
        """
        ...

    @property
    def counters(self) -> DedupeCounters:
        """Counters for metrics."""
        ...

    @property
    def degraded(self) -> bool:
        """True while a shared backend is unreachable."""
        ...

    async def close(self) -> None:
        """Release connections and background tasks."""
        ...
