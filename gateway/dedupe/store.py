"""The Deduplicator protocol: one execution per operation_id across callers and replicas."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.call import Call


class HeldClaim(Protocol):
    """What `produce` gets: the claim it runs under."""

    async def sending(self) -> None:
        """Mark the claim: a request that must not be repeated blind is about to leave.

        Call it right before the first attempt of such a request (a synchronous create). From
        then on the claim outlives its holder: one that dies, is cancelled or fails unexpectedly
        leaves `OutcomeUnknown` stored for the id, so no duplicate re-sends. After `sending()`,
        `produce` must raise a definitive error (e.g. OutcomeUnknown) when Toloka may have
        acted; any other `GatewayError` says Toloka did not act, and releases the claim. Raises
        `errors.Unavailable` (nothing sent) when the mark cannot be recorded.
        """
        ...


Produce = Callable[[HeldClaim], Awaitable[bytes]]


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
    unknown: int = 0  # an outcome stored as unknown (a marked claim whose holder died or failed)
    detached: int = 0  # a holder kept running after its caller left (cancelled or timed out)


class Deduplicator(Protocol):
    """Runs `produce` once per key; duplicates get the first outcome."""

    async def run(
        self,
        key: str,
        fingerprint: str,
        produce: Produce,
        *,
        call: Call,
    ) -> tuple[bytes, bool]:
        """Return `(outcome, replayed)`.

        The first call for `key` claims it (with a renewed lease) and runs `produce`, which
        finishes and settles the claim even when this caller leaves early (cancelled, or its
        deadline passed).
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
