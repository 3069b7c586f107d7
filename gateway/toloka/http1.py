"""`Http1Pool`: a lean HTTP/1.1 client for the one upstream, Toloka, with keep-alive connections.

Every Toloka request the gateway makes (gRPC use cases, the REST front's relay, polls) goes through
one pool of persistent connections to one origin. A connection is an `asyncio.Protocol` whose
responses are parsed by httptools (llhttp, the parser uvicorn uses): a request is one write, a
response arrives as callbacks, and nothing else runs per request.

Why not aiohttp's `ClientSession`: it does much per request that one fixed origin never needs
(cookies, redirects, proxies, tracing hooks, URL re-parsing). Measured relaying one small GET on
2 cores, the gateway's own CPU per request (see docs/benchmarks.md, "REST front"): aiohttp 135 µs,
aiosonic 156 µs, pyreqwest 123 µs, rnet 142 µs, niquests 625 µs; this pool 66 µs.

What it does:
- `request()` returns once the status line and headers are in; the body is read whole (`read`)
  or chunk by chunk (`chunks`), with the connection paused while more than `HIGH_WATER` bytes wait
  unread, so a 50 MB page is never held whole.
- A connection goes back to the pool only after its response was read to the end with keep-alive;
  a connection idle for `idle_s` is closed instead of reused (a server may have dropped it).
- An idempotent request (GET, PUT, DELETE) that finds a reused connection closed before any byte of
  the answer arrived is sent once more on a new connection, as RFC 9112 §9.3.1 allows.
- Errors: `ConnectFailed` (nothing was sent), `ConnectionDropped` (sent; the answer did not come
  whole) and `TimeoutError` (the caller's bound passed).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Mapping
from urllib.parse import urlsplit

from gateway.toloka.http1_connection import (
    HIGH_WATER,
    LOW_WATER,
    ConnectFailed,
    ConnectionDropped,
    Response,
    _Connection,
)

__all__ = [
    "HIGH_WATER",
    "LOW_WATER",
    "METHODS",
    "ConnectFailed",
    "ConnectionDropped",
    "Http1Pool",
    "Response",
]

# The methods this client sends (a HEAD answer's body could not be told apart: not supported), and
# those among them it may send once more after a reused connection dropped the request unanswered.
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
_RESENDABLE = frozenset({"GET", "PUT", "DELETE"})


def _plain(text: str) -> bool:
    """Printable ASCII only: nothing that could end a line of the request's head."""
    return text.isascii() and text.isprintable()


def _check_request(
    method: str, target: str, content_type: str | None, headers: Mapping[str, str] | None = None
) -> None:
    """ValueError for what would break the request's head: an unsupported method, or a target,
    content type or extra header with a control character (or, in the target, a space)."""
    if method not in METHODS:
        raise ValueError(f"method {method!r} is not one this client sends")
    if not _plain(target) or " " in target:
        raise ValueError("request target holds a space or a control character")
    if content_type is not None and not _plain(content_type):
        raise ValueError("content type holds a control character")
    if headers:  # only when tracing is on: nothing more to check per request when it is off
        for name, value in headers.items():
            if not _plain(name + value) or ":" in name or " " in name:
                raise ValueError("an extra header holds a control character, or its name a colon or space")


class Http1Pool:
    """Keep-alive connections to one origin (`base_url`), at most `max_connections` at a time."""

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int,
        headers: Mapping[str, str],
        idle_s: float = 15.0,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._host = url.hostname
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if url.scheme == "https" else None
        self._prefix = url.path.rstrip("/")
        host_header = url.netloc.rpartition("@")[2]
        fixed = {"Host": host_header, **headers}
        self._head = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self._max = max_connections
        self._idle_s = idle_s
        self._idle: list[_Connection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    @property
    def prefix(self) -> str:
        """The base URL's path (e.g. `/api/v1`), which request targets start with."""
        return self._prefix

    async def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        timeout_s: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one request (`target`: path and query, as encoded) and wait for its status and headers.

        `timeout_s` bounds connecting and the wait for the answer's head; `headers` are sent besides
        the pool's own (a trace's `traceparent`). The caller reads the body and then calls
        `release()` (or reads nothing and releases: the connection is closed).
        """
        _check_request(method, target, content_type, headers)
        head = f"{method} {target} HTTP/1.1\r\n{self._head}"
        if content_type is not None:
            head += f"Content-Type: {content_type}\r\n"
        if headers:
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        if body is not None or method in ("POST", "PUT", "PATCH"):
            head += f"Content-Length: {len(body or b'')}\r\n"
        data = head.encode("latin-1") + b"\r\n"
        if timeout_s is None:
            return await self._send(method, data, body)
        async with asyncio.timeout(timeout_s):
            return await self._send(method, data, body)

    async def _send(self, method: str, data: bytes, body: bytes | None) -> Response:
        conn = await self._connection()
        try:
            return await self._exchange(conn, data, body)
        except ConnectionDropped:
            if not (conn.reused and not conn.got_bytes and method in _RESENDABLE):
                raise
        return await self._exchange(await self._connection(fresh=True), data, body)

    async def _exchange(self, conn: _Connection, data: bytes, body: bytes | None) -> Response:
        response = Response(self, conn)
        conn.response = response
        conn.got_bytes = False
        assert conn.transport is not None
        try:
            if conn.closed:
                raise ConnectionDropped("the connection closed while idle")
            if body and len(body) > 64 * 1024:
                conn.transport.write(data)
                conn.transport.write(body)
            else:
                conn.transport.write(data + body if body else data)
            await response.head()
        except BaseException:
            response.release()
            raise
        return response

    async def _connection(self, *, fresh: bool = False) -> _Connection:
        """An idle connection still fit to use (unless `fresh`), or a new one within `max_connections`."""
        while True:
            now = time.monotonic()
            while self._idle and not fresh:
                conn = self._idle.pop()
                if not conn.closed and now - conn.idle_since < self._idle_s:
                    conn.reused = True
                    return conn
                conn.close()
                self._open -= 1
            if self._open < self._max:
                return await self._connect()
            if fresh and self._idle:  # make room for a new connection
                self._idle.pop(0).close()
                self._open -= 1
                continue
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken and cancelled at once: pass the wake-up on
                raise

    async def _connect(self) -> _Connection:
        if self._closed:
            raise ConnectFailed("the connection pool is closed")
        self._open += 1
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(
                _Connection,
                self._host,
                self._port,
                ssl=self._ssl,
                server_hostname=self._host if self._ssl else None,
            )
        except OSError as e:
            self.forget()
            raise ConnectFailed(f"cannot connect to {self._host}:{self._port}: {e.strerror or e}") from None
        except BaseException:
            self.forget()
            raise
        return conn

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def give_back(self, conn: _Connection) -> None:
        """Keep a connection whose answer was read whole for the next request."""
        if conn.closed or self._closed:
            conn.close()
            self.forget()
            return
        conn.idle_since = time.monotonic()
        conn.reused = False
        self._idle.append(conn)
        self._wake_one()

    def forget(self) -> None:
        """A connection closed for good: its place may be taken by a new one."""
        self._open -= 1
        self._wake_one()

    async def close(self) -> None:
        """Close every idle connection; connections in use close when released."""
        self._closed = True
        for conn in self._idle:
            conn.close()
            self._open -= 1
        self._idle.clear()
        await asyncio.sleep(0)
