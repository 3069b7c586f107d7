"""The RateLimiter protocol: every outbound Toloka request is admitted through it."""

from __future__ import annotations

from typing import Protocol

from gateway.call import Call


class RateLimiter(Protocol):
    """Admits Toloka requests against the global limits and the caller's quota, all or nothing."""

    async def acquire(self, kind: str, *, tasks: int, call: Call) -> None:
        """Admit one request of `kind` carrying `tasks` tasks (1 for non-task requests).

        Waits for capacity when it comes before `call.deadline` and within the configured
        maximum wait; otherwise raises `errors.RateLimited` with `retry_after` and `quota` set.
        """
        ...

    async def report_throttled(self, retry_after: float, *, kind: str) -> None:
        """Toloka answered 429 to a request of `kind`: every replica holds back for `retry_after`
        seconds (capped at `decision.MAX_COOLDOWN_S`; ignored unless finite and non-negative)
        the requests of that kind when Toloka limits that kind on its own (create_tasks,
        update_pool_overlap), else (the account-wide limit) the requests of every kind.
        """
        ...

    @property
    def degraded(self) -> bool:
        """True while a shared backend is unreachable and a local fallback decides."""
        ...

    async def close(self) -> None:
        """Release connections and background tasks."""
        ...
