"""The event loop every long-running command uses: uvloop when installed, else asyncio's own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory (measured faster for both gRPC and HTTP here), or None for the default."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on the preferred loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
