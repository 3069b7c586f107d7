"""The two things a streaming import waits for, waited for together until the caller's deadline:
the answer of the oldest batch in flight, and the caller's next message.

Several batches may be in flight (Toloka runs async operations side by side); their answers are
handed on in the order the batches were started, whatever order they come in, so answers keep
stream order. Whichever comes first, the oldest batch's answer or a message, is handed on (the
answer before a message that came at the same time); when the deadline comes first, that is the
event. Nothing here knows what a batch or a message is.
"""

from __future__ import annotations

import asyncio
from collections import deque
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
    """Up to `width` batches in flight, and at most one read of the request stream outstanding."""

    END = object()  # the caller closed its side of the stream
    DEADLINE = object()  # the caller's time ran out first

    def __init__(
        self, requests: AsyncIterator[Any], call: Call, send: Callable[[B], Awaitable[Any]], *, width: int = 1
    ) -> None:
        self._requests = requests
        self._call = call
        self._send = send
        self.width = width
        self._read: asyncio.Future[Any] | None = None
        self._pending: deque[tuple[B, asyncio.Future[Any]]] = deque()

    @property
    def busy(self) -> bool:
        """True while a batch is in flight."""
        return bool(self._pending)

    @property
    def full(self) -> bool:
        """True while `width` batches are in flight."""
        return len(self._pending) >= self.width

    @property
    def in_flight(self) -> B | None:
        """The oldest batch in flight, if any."""
        return self._pending[0][0] if self._pending else None

    @property
    def count(self) -> int:
        """How many batches are in flight."""
        return len(self._pending)

    def start(self, batch: B) -> None:
        """Send `batch` in the background (only while not `full`)."""
        assert not self.full, f"at most {self.width} batches in flight"
        self._pending.append((batch, asyncio.ensure_future(self._send(batch))))

    async def wait(self, *, reading: bool) -> Sent[B] | Refused | object:
        """The next event: `Sent` (its error raised here), a message, `Refused`, `END` or `DEADLINE`."""
        waits: set[asyncio.Future[Any]] = set()
        if reading:
            if self._read is None:
                self._read = asyncio.ensure_future(anext(self._requests, _NO_MESSAGE))
            waits.add(self._read)
        if self._pending:
            waits.add(self._pending[0][1])
        left = self._call.remaining()
        done, _ = await asyncio.wait(
            waits, timeout=None if left is None else max(0.0, left), return_when=asyncio.FIRST_COMPLETED
        )
        if self._pending and self._pending[0][1] in done:
            batch, sent = self._pending.popleft()
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
        """Stop waiting: for the next message, and for the batches in flight (whose creates go on in
        dedupe, so a re-send replays them)."""
        for future in (self._read, *(sent for _, sent in self._pending)):
            if future is not None and not future.done():
                future.cancel()
            elif future is not None and not future.cancelled():
                future.exception()  # retrieved: an error no one will read is not logged as lost
        self._read = None
        self._pending.clear()
