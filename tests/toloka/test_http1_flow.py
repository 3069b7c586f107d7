"""Http1Pool response bodies against real servers: flow control, chunked, read until close, stalls.

The big-body tests watch the pool's connection through `ConnectionProbe` (its protocol callbacks,
passed through unchanged) to see what the response buffered and whether the socket is being read.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import AsyncIterator

import pytest

from gateway.toloka.http1 import HIGH_WATER, ConnectionDropped, Response
from tests.toloka.http1_upstream import (
    ConnectionProbe,
    Peer,
    Rig,
    Serve,
    answer,
    echo_target,
    exchange,
    fetch,
    within_guard,
)

pytestmark = pytest.mark.timeout(60)

CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    rig = Rig()
    yield rig
    await rig.aclose()


def chunked(*parts: bytes) -> bytes:
    """`parts` in chunked transfer coding, with the last chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


def serve_body_once(answer_bytes: bytes) -> Serve:
    """A serve that answers one request with `answer_bytes`, then reads until the client closes."""

    async def serve(peer: Peer) -> None:
        await peer.next_request()
        peer.writer.write(answer_bytes)
        await peer.until_closed()

    return serve


async def collect(chunks: AsyncIterator[bytes], into: list[bytes]) -> None:
    """Append each chunk to `into` as it comes (what arrived stays visible if the stream fails)."""
    async for chunk in chunks:
        into.append(chunk)


async def read_by(response: Response, how: str) -> bytes:
    """The whole body through `read()` or by joining `chunks()`."""
    if how == "read":
        return await response.read()
    return b"".join([chunk async for chunk in response.chunks()])


async def test_pauses_reading_over_high_water_and_streams_exact_bytes_when_caller_reads_late(
    rig: Rig,
) -> None:
    body = random.Random(16).randbytes(16 * 1024 * 1024)
    upstream = await rig.upstream(serve_body_once(answer(body=body)))
    pool = rig.pool(upstream.url)

    digest = hashlib.sha256()
    async with exchange(pool, "GET", "/big") as response:
        probe = ConnectionProbe(response, threshold=HIGH_WATER)
        await within_guard(probe.over_threshold.wait())
        assert not probe.reading

        async for chunk in response.chunks():
            digest.update(chunk)

    assert digest.hexdigest() == hashlib.sha256(body).hexdigest()
    assert HIGH_WATER < probe.peak_buffered <= HIGH_WATER + probe.largest_read


async def test_read_returns_whole_body_when_larger_than_high_water(rig: Rig) -> None:
    body = random.Random(2).randbytes(4 * HIGH_WATER)
    upstream = await rig.upstream(serve_body_once(answer(body=body)))
    pool = rig.pool(upstream.url)

    async with exchange(pool, "GET", "/big") as response:
        got = await within_guard(response.read())

    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()


@pytest.mark.parametrize("how", ["read", "chunks"])
async def test_reads_chunked_body_and_keeps_connection_when_answer_is_chunked(rig: Rig, how: str) -> None:
    parts = [b"a" * 10, bytes(range(256)) * 300, b"z"]

    async def chunked_answers(peer: Peer) -> None:
        while await peer.next_request() is not None:
            peer.writer.write(CHUNKED_HEAD + chunked(*parts))

    upstream = await rig.upstream(chunked_answers)
    pool = rig.pool(upstream.url)

    for _ in range(2):
        async with exchange(pool, "GET", "/chunked") as response:
            assert response.content_length is None
            assert await within_guard(read_by(response, how)) == b"".join(parts)

    assert [r.conn_id for r in upstream.requests] == [0, 0]


@pytest.mark.parametrize("how", ["read", "chunks"])
async def test_reads_body_until_close_and_opens_new_connection_when_no_length(rig: Rig, how: str) -> None:
    body = random.Random(3).randbytes(100_000)

    async def until_close(peer: Peer) -> None:
        await peer.next_request()
        peer.writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body)

    upstream = await rig.upstream(until_close)
    pool = rig.pool(upstream.url)

    for _ in range(2):
        async with exchange(pool, "GET", "/stream") as response:
            assert await within_guard(read_by(response, how)) == body

    assert [r.conn_id for r in upstream.requests] == [0, 1]


async def test_chunks_yields_first_part_before_server_sent_the_rest(rig: Rig) -> None:
    gate = asyncio.Event()

    async def two_parts(peer: Peer) -> None:
        await peer.next_request()
        peer.writer.write(CHUNKED_HEAD + b"5\r\nfirst\r\n")
        await gate.wait()
        peer.writer.write(b"4\r\nlast\r\n0\r\n\r\n")
        await echo_target(peer)

    upstream = await rig.upstream(two_parts)
    pool = rig.pool(upstream.url)

    async with exchange(pool, "GET", "/parts") as response:
        stream = response.chunks()
        assert await within_guard(anext(stream)) == b"first"
        gate.set()
        assert [chunk async for chunk in stream] == [b"last"]

    assert await fetch(pool, "GET", "/next") == b"GET /next HTTP/1.1"
    assert upstream.accepted == 1


async def test_chunks_raises_timeout_and_release_closes_when_body_stalls_past_wait_s(rig: Rig) -> None:
    upstream = await rig.upstream(serve_body_once(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfour"))
    pool = rig.pool(upstream.url)
    got: list[bytes] = []
    async with exchange(pool, "GET", "/stall") as response:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await within_guard(collect(response.chunks(wait_s=0.2), got))
        assert time.monotonic() - started < 2.0
        assert got == [b"four"]

    await within_guard(upstream.peers[0].gone.wait())  # released mid-body: closed, not kept


async def test_read_raises_connection_dropped_when_body_is_cut_short(rig: Rig) -> None:
    async def cut(peer: Peer) -> None:
        await peer.next_request()
        peer.writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfour")

    upstream = await rig.upstream(cut)
    pool = rig.pool(upstream.url)

    with pytest.raises(ConnectionDropped):
        await within_guard(fetch(pool, "GET", "/cut"))


async def test_read_raises_connection_dropped_when_chunk_framing_is_malformed(rig: Rig) -> None:
    upstream = await rig.upstream(serve_body_once(CHUNKED_HEAD + b"5\r\nfirst\r\nzz\r\n"))
    pool = rig.pool(upstream.url)

    with pytest.raises(ConnectionDropped):  # from request() or read(): whichever meets the bad bytes
        await within_guard(fetch(pool, "GET", "/bad-chunk"))
    await within_guard(upstream.peers[0].gone.wait())


async def test_refuses_head_and_unknown_methods_when_nothing_is_sent(rig: Rig) -> None:
    """A HEAD answer's body could not be told from the next answer: the client never sends one."""

    async def answers(peer: Peer) -> None:
        while await peer.next_request() is not None:
            peer.writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    upstream = await rig.upstream(answers)
    pool = rig.pool(upstream.url)
    for method in ("HEAD", "OPTIONS", "get", "GET\r\nX: y"):
        with pytest.raises(ValueError):
            await pool.request(method, "/tasks/1")
    with pytest.raises(ValueError):
        await pool.request("POST", "/tasks", body=b"[]", content_type="application/json\r\nX-Injected: 1")
    async with exchange(pool, "GET", "/tasks/1") as response:
        assert await response.read() == b"ok"
    assert len(upstream.requests) == 1
