"""A real HTTP/1.1 upstream on 127.0.0.1:0 for the Http1Pool tests, and probes on the pool's connections.

Each accepted connection runs a coroutine the test writes (`Serve`), which reads requests with
`Peer.next_request()` and writes raw answer bytes, so a test controls the wire byte for byte. The
upstream counts accepted and open connections and records every request it read, and lets a test
wait for either without sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from gateway.toloka.http1 import Http1Pool, Response, _Connection

Serve = Callable[["Peer"], Awaitable[None]]
GUARD_S = 5.0  # bounds a wait that only a broken pool would make long; a failure, never a pause


@dataclass(frozen=True)
class Received:
    """One request as it crossed the wire: its connection, head (up to the blank line) and body."""

    conn_id: int
    head: bytes
    body: bytes

    @property
    def request_line(self) -> bytes:
        """The request line, without its CRLF."""
        return self.head.split(b"\r\n", 1)[0]

    @property
    def header_lines(self) -> list[bytes]:
        """The header lines, sorted (HTTP does not give their order a meaning)."""
        return sorted(self.head.split(b"\r\n")[1:-2])


def answer(status: int = 200, body: bytes = b"", *, extra: bytes = b"") -> bytes:
    """A whole keep-alive answer with a Content-Length; `extra` holds more header lines, CRLF-ended."""
    head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n".encode()
    return head + extra + b"\r\n" + body


class Peer:
    """One accepted connection, as the test's `Serve` coroutine sees it."""

    def __init__(
        self, upstream: Upstream, conn_id: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.upstream = upstream
        self.conn_id = conn_id
        self.reader = reader
        self.writer = writer
        self.gone = asyncio.Event()  # set once the client closed its side (or the serve ended)

    async def next_request(self) -> Received | None:
        """The next whole request, or None once the client closed the connection."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            self.gone.set()
            return None
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length) if length else b""
        received = Received(self.conn_id, head, body)
        await self.upstream.record(received)
        return received

    async def until_closed(self) -> None:
        """Read (and drop) whatever comes until the client closes the connection."""
        while await self.reader.read(65536):
            pass
        self.gone.set()


async def echo_target(peer: Peer) -> None:
    """The ordinary upstream: answers every request, keep-alive, with its request line as the body."""
    while (received := await peer.next_request()) is not None:
        peer.writer.write(answer(body=received.request_line))


class Upstream:
    """A TCP server on a free port whose every connection runs `serve`; counts and records what it sees."""

    def __init__(self, serve: Serve = echo_target) -> None:
        self._serve = serve
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Condition()
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = False
        self.peers: list[Peer] = []
        self.requests: list[Received] = []
        self.open_now = 0
        self.peak_open = 0

    @property
    def accepted(self) -> int:
        """Connections accepted so far."""
        return len(self.peers)

    @property
    def url(self) -> str:
        """The base URL the pool is given."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def start(self) -> Upstream:
        """Listen on 127.0.0.1:0."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(self, len(self.peers), reader, writer)
        self.peers.append(peer)
        self._tasks.append(asyncio.current_task())  # type: ignore[arg-type]
        self.open_now += 1
        self.peak_open = max(self.peak_open, self.open_now)
        try:
            await self._serve(peer)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
        finally:
            self.open_now -= 1
            peer.gone.set()
            writer.close()

    async def record(self, received: Received) -> None:
        """Keep a request and wake whoever waits for it."""
        async with self._changed:
            self.requests.append(received)
            self._changed.notify_all()

    async def wait_requests(self, count: int) -> None:
        """Return once `count` requests have been read."""
        async with asyncio.timeout(GUARD_S), self._changed:
            await self._changed.wait_for(lambda: len(self.requests) >= count)

    async def stop(self) -> None:
        """Stop listening, end every connection's serve and close its socket."""
        self._stopping = True
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()


class ConnectionProbe:
    """Watches one pool connection from its protocol callbacks: what its response buffered, when it closed."""

    def __init__(self, response: Response, *, threshold: int = 0) -> None:
        conn = response._conn
        assert conn is not None
        self.conn: _Connection = conn
        self.peak_buffered = response._buffered
        self.largest_read = response._buffered
        self.over_threshold = asyncio.Event()
        if threshold and response._buffered > threshold:
            self.over_threshold.set()
        self.lost = asyncio.Event()
        received, lost = conn.data_received, conn.connection_lost

        def data_received(data: bytes) -> None:
            received(data)
            self.largest_read = max(self.largest_read, len(data))
            self.peak_buffered = max(self.peak_buffered, response._buffered)
            if threshold and response._buffered > threshold:
                self.over_threshold.set()

        def connection_lost(exc: Exception | None) -> None:
            lost(exc)
            self.lost.set()

        conn.data_received = data_received  # type: ignore[method-assign]
        conn.connection_lost = connection_lost  # type: ignore[method-assign]

    @property
    def reading(self) -> bool:
        """Whether the connection's transport is reading from its socket."""
        assert self.conn.transport is not None
        return self.conn.transport.is_reading()


class Rig:
    """The upstreams and pools one test made, all closed at its end (pools first)."""

    def __init__(self) -> None:
        self._upstreams: list[Upstream] = []
        self._pools: list[Http1Pool] = []

    async def upstream(self, serve: Serve = echo_target) -> Upstream:
        """A started upstream running `serve` on each connection."""
        upstream = await Upstream(serve).start()
        self._upstreams.append(upstream)
        return upstream

    def pool(self, url: str, *, max_connections: int = 1, **options: Any) -> Http1Pool:
        """A pool on `url` (no fixed headers unless given)."""
        options.setdefault("headers", {})
        pool = Http1Pool(url, max_connections=max_connections, **options)
        self._pools.append(pool)
        return pool

    async def aclose(self) -> None:
        """Close every pool, then stop every upstream."""
        for pool in self._pools:
            await pool.close()
        for upstream in self._upstreams:
            await upstream.stop()


async def within_guard(awaitable: Awaitable[Any]) -> Any:
    """Await something a correct pool makes happen promptly; a broken one fails here, not at the suite timeout."""
    guard = asyncio.timeout(GUARD_S)
    try:
        async with guard:
            return await awaitable
    except TimeoutError:
        if guard.expired():  # the guard's own expiry, not a TimeoutError the awaitable raised
            raise AssertionError(f"still waiting after {GUARD_S} s (a correct pool takes ms)") from None
        raise


async def fetch(pool: Http1Pool, method: str = "GET", target: str = "/", **kwargs: Any) -> bytes:
    """One whole exchange: request, read the body, release."""
    response = await pool.request(method, target, **kwargs)
    try:
        return await response.read()
    finally:
        response.release()


@asynccontextmanager
async def exchange(pool: Http1Pool, method: str, target: str, **kwargs: Any) -> AsyncIterator[Response]:
    """A response held for the block and released at its end, even when the block fails."""
    response = await pool.request(method, target, **kwargs)
    try:
        yield response
    finally:
        response.release()
