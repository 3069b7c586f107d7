"""One connection of `Http1Pool` (`_Connection`, an asyncio Protocol fed by httptools) and the
`Response` it parses into; the pool itself, and what it sends, are in `http1.py`.

A `Response` hands its connection back to its pool when the answer was read to the end with
keep-alive, and closes it otherwise (`release`); while more than `HIGH_WATER` bytes of a body wait
unread, the connection stops reading until the reader is below `LOW_WATER`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol, cast

import httptools
from multidict import CIMultiDict

HIGH_WATER = 256 * 1024  # unread body bytes at which a connection stops reading
LOW_WATER = 64 * 1024


class ConnectFailed(OSError):
    """The connection could not be made: nothing was sent."""


class ConnectionDropped(OSError):
    """The request was (or may have been) sent, and the answer did not arrive whole."""


class ConnectionPool(Protocol):
    """Where a released connection goes (`Http1Pool`)."""

    def give_back(self, conn: _Connection) -> None:
        """Keep a connection whose answer was read whole for the next request."""
        ...

    def forget(self) -> None:
        """A connection closed for good: its place may be taken by a new one."""
        ...


class _Connection(asyncio.Protocol):
    """One keep-alive connection: writes a request, parses the answer into the waiting `Response`."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.closed = False
        self.idle_since = 0.0
        self.reused = False
        self.got_bytes = False

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        if self.response is None or self.response.done:  # bytes nobody asked for: not trusted again
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.response.fail(ConnectionDropped("the server switched protocols"))
            self.close()
        except httptools.HttpParserError as e:
            self.response.fail(ConnectionDropped(f"malformed answer: {e}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.response is not None:
            self.response.lost()

    # -- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.response is not None
        self.response.add_header(name, value)

    def on_headers_complete(self) -> None:
        assert self.response is not None
        self.response.headers_done(self.parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        assert self.response is not None
        self.response.feed(body)

    def on_message_complete(self) -> None:
        assert self.response is not None
        self.response.complete(keep_alive=self.parser.should_keep_alive())

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Response:
    """One answer: `status` and `headers` at once, the body read whole or chunk by chunk; then `release`."""

    def __init__(self, pool: ConnectionPool, conn: _Connection) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
        self.status = 0
        self.headers: CIMultiDict[str] = CIMultiDict()
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._done = False
        self._keep_alive = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._head_seen = False
        self._whole = False  # read whole (`read`): never paused

    @property
    def done(self) -> bool:
        """Whether the whole answer has arrived."""
        return self._done

    @property
    def content_length(self) -> int | None:
        """The announced body length, or None (chunked, or read until close)."""
        value = self.headers.get("Content-Length")
        return int(value) if value is not None and value.isdigit() else None

    # -- fed by the connection
    def add_header(self, name: bytes, value: bytes) -> None:
        self.headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def headers_done(self, status: int) -> None:
        self.status = status
        self._head_seen = True
        self._wake()

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER and not self._paused and not self._whole and self._conn is not None:
            assert self._conn.transport is not None
            self._conn.transport.pause_reading()
            self._paused = True
        self._wake()

    def complete(self, *, keep_alive: bool) -> None:
        self._done = True
        self._keep_alive = keep_alive
        self._wake()

    def fail(self, error: BaseException) -> None:
        if not self._done:
            self._error = error
        self._wake()

    def lost(self) -> None:
        """The connection closed: the end of a body read until close, or a cut answer."""
        if self._done:
            return
        if (
            self._head_seen
            and self.content_length is None
            and "chunked" not in self.headers.get("Transfer-Encoding", "")
        ):
            self.complete(keep_alive=False)
        else:
            self.fail(ConnectionDropped("the connection closed before the answer was whole"))

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self, timeout_s: float | None = None) -> None:
        if self._error is not None:
            raise self._error
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            if timeout_s is None:
                await self._waiter
            else:
                async with asyncio.timeout(timeout_s):
                    await self._waiter
        finally:
            self._waiter = None
        if self._error is not None:
            raise self._error

    # -- read by the caller
    async def head(self) -> None:
        """Wait for the status line and headers."""
        while not self._head_seen:
            await self._wait()

    async def read(self) -> bytes:
        """The whole body (held whole: the connection is not paused for it)."""
        self._whole = True
        while not self._done:
            self._resume()
            await self._wait()
        body = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        return body

    async def chunks(self, *, wait_s: float | None = None) -> AsyncIterator[bytes]:
        """The body as it arrives; `wait_s` bounds each wait for more (TimeoutError)."""
        while True:
            while self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                yield chunk
            if self._done:
                return
            self._resume()
            await self._wait(wait_s)

    def _resume(self) -> None:
        if self._paused and (self._whole or self._buffered < LOW_WATER) and self._conn is not None:
            assert self._conn.transport is not None
            self._conn.transport.resume_reading()
            self._paused = False

    def release(self) -> None:
        """Give the connection back when the answer was read to its end, else close it."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        conn.response = None
        if self._done and self._keep_alive and not self._chunks and self._error is None:
            self._pool.give_back(conn)
        else:
            conn.close()
            self._pool.forget()
