"""The Deduplicator protocol: one execution per operation_id across callers and replicas."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from gateway.call import Call


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
    def degraded(self) -> bool:
        """True while a shared backend is unreachable."""
        ...

    async def close(self) -> None:
        """Release connections and background tasks."""
        ...
