"""The two things a streaming import waits for, waited for together until the caller's deadline:
the answer of the one batch in flight, and the caller's next message.

Whichever comes first is handed on (a batch's answer before a message that came at the same time,
so answers keep stream order); when the deadline comes first, that is the event. Nothing here knows
what a batch or a message is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from gateway import errors
from gateway.call import Call

B = TypeVar("B")
_NO_MESSAGE = object()


@dataclass(frozen=True)
class Sent(Generic[B]):
    """The batch in flight was answered: `reply`, or None when the deadline came first."""

    batch: B
    reply: Any


@dataclass(frozen=True)
class Refused:
    """Reading the caller's next message failed with a refusal (undecodable, over the memory budget)."""

    error: errors.GatewayError


class Flow(Generic[B]):
    """At most one batch in flight, and at most one read of the request stream outstanding."""

    END = object()  # the caller closed its side of the stream
    DEADLINE = object()  # the caller's time ran out first

    def __init__(self, requests: AsyncIterator[Any], call: Call, send: Callable[[B], Awaitable[Any]]) -> None:
        self._requests = requests
        self._call = call
        self._send = send
        self._read: asyncio.Future[Any] | None = None
        self._pending: tuple[B, asyncio.Future[Any]] | None = None

    @property
    def busy(self) -> bool:
        """True while a batch is in flight."""
        return self._pending is not None

    @property
    def in_flight(self) -> B | None:
        """The batch in flight, if any."""
        return None if self._pending is None else self._pending[0]

    def start(self, batch: B) -> None:
        """Send `batch` in the background (only when none is in flight)."""
        assert self._pending is None, "one batch in flight at a time"
        self._pending = (batch, asyncio.ensure_future(self._send(batch)))

    async def wait(self, *, reading: bool) -> Sent[B] | Refused | object:
        """The next event: `Sent` (its error raised here), a message, `Refused`, `END` or `DEADLINE`."""
        waits: set[asyncio.Future[Any]] = set()
        if reading:
            if self._read is None:
                self._read = asyncio.ensure_future(anext(self._requests, _NO_MESSAGE))
            waits.add(self._read)
        if self._pending is not None:
            waits.add(self._pending[1])
        left = self._call.remaining()
        done, _ = await asyncio.wait(
            waits, timeout=None if left is None else max(0.0, left), return_when=asyncio.FIRST_COMPLETED
        )
        if self._pending is not None and self._pending[1] in done:
            batch, sent = self._pending
            self._pending = None
            return Sent(batch, sent.result())
        if self._read is not None and self._read in done:
            read, self._read = self._read, None
            try:
                message = read.result()
            except errors.GatewayError as e:
                return Refused(e)
            return Flow.END if message is _NO_MESSAGE else message
        return Flow.DEADLINE

    def cancel(self) -> None:
        """Stop waiting: for the next message, and for the batch in flight (whose create goes on in
        dedupe, so a re-send replays it)."""
        for future in (self._read, None if self._pending is None else self._pending[1]):
            if future is not None and not future.done():
                future.cancel()
            elif future is not None and not future.cancelled():
                future.exception()  # retrieved: an error no one will read is not logged as lost
        self._read = None
        self._pending = None
