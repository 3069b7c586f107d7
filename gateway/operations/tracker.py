"""The OperationTracker protocol: one poll loop per operation, shared by every waiter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any, Protocol

from gateway.call import Call

# Reads one operation from Toloka (`GET /api/v1/operations/{id}`), through the rate limiter.
# Raises errors.NotFound for an unknown id; other GatewayErrors for other failures.
FetchOperation = Callable[[str, Call], Awaitable[dict[str, Any]]]


class OperationTracker(Protocol):
    """Knows the latest state of operations and wakes waiters when it changes."""

    async def remember(self, operation: dict[str, Any], *, pools: Collection[str] = ()) -> None:
        """Record an operation Toloka just returned (e.g. from CreateTasks) and the pools it touches."""
        ...

    async def pools_of(self, operation_id: str) -> frozenset[str] | None:
        """The pools recorded by `remember` (on any replica), or None when none were recorded.

        Raises errors.Unavailable when the shared record cannot be read.
        """
        ...

    async def get(self, operation_id: str, *, call: Call) -> dict[str, Any]:
        """The current state: cached when fresh or final, else read from Toloka once."""
        ...

    async def wait(self, operation_id: str, *, until: float | None, call: Call) -> dict[str, Any]:
        """The state once finished, or the latest state at `until` / the call's deadline."""
        ...

    def watch(self, operation_id: str, *, call: Call) -> AsyncIterator[dict[str, Any]]:
        """Every change of status or progress, ending after a final state."""
        ...

    async def drain(self) -> None:
        """Shutting down: every current and later `wait` returns its latest state at once; `watch` ends."""
        ...

    async def close(self) -> None:
        """Stop poll loops and release connections."""
        ...
