"""The closed-loop load every throughput benchmark drives: N workers calling back to back for a while."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def count_calls(
    call: Callable[[], Awaitable[object]], seconds: float, concurrency: int
) -> tuple[int, float]:
    """Calls completed by `concurrency` workers, each calling `call` again as soon as one returns, until
    `seconds` have passed; and the seconds it took (the last calls end after the stop)."""
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            await call()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, time.perf_counter() - started
