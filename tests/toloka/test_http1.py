"""Http1Pool against real servers on 127.0.0.1: keep-alive, the connection limit, resends and failures.

Each test's upstream (tests/toloka/http1_upstream.py) writes raw answer bytes and records the raw
requests and the connections it accepted, so what the pool sent and how many connections it used
are asserted from the server's side.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest

from gateway.toloka.http1 import ConnectFailed, ConnectionDropped
from tests.toloka.http1_upstream import (
    ConnectionProbe,
    Peer,
    Rig,
    answer,
    echo_target,
    exchange,
    fetch,
    within_guard,
)

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    rig = Rig()
    yield rig
    await rig.aclose()


async def test_sequential_requests_reuse_one_connection_when_answers_keep_alive(rig: Rig) -> None:
    upstream = await rig.upstream()
    pool = rig.pool(upstream.url, max_connections=4)

    bodies = [await fetch(pool, "GET", f"/n/{i}") for i in range(5)]

    assert bodies == [f"GET /n/{i} HTTP/1.1".encode() for i in range(5)]
    assert upstream.accepted == 1
    assert [r.conn_id for r in upstream.requests] == [0] * 5


async def test_sends_host_fixed_headers_and_target_as_given_when_no_body(rig: Rig) -> None:
    upstream = await rig.upstream()
    pool = rig.pool(upstream.url + "/api/v1", headers={"Authorization": "ApiKey k-1", "User-Agent": "gw/1"})
    port = upstream.url.rpartition(":")[2]

    await fetch(pool, "GET", "/api/v1/pools/1?x=a%20b&y=2")

    [sent] = upstream.requests
    assert sent.request_line == b"GET /api/v1/pools/1?x=a%20b&y=2 HTTP/1.1"
    assert sent.header_lines == sorted(
        [f"Host: 127.0.0.1:{port}".encode(), b"Authorization: ApiKey k-1", b"User-Agent: gw/1"]
    )
    assert sent.body == b""


@pytest.mark.parametrize(
    ("method", "body", "content_type", "expected"),
    [
        ("POST", b'{"a":1}', "application/json", [b"Content-Length: 7", b"Content-Type: application/json"]),
        ("POST", None, None, [b"Content-Length: 0"]),
        ("PUT", bytes(range(256)) * 400, "application/octet-stream", None),  # over 64 KiB: two writes
        ("PATCH", b"x", None, [b"Content-Length: 1"]),
    ],
)
async def test_sends_content_length_type_and_body_when_given(
    rig: Rig, method: str, body: bytes | None, content_type: str | None, expected: list[bytes] | None
) -> None:
    upstream = await rig.upstream()
    pool = rig.pool(upstream.url, headers={"X-K": "v"})

    await fetch(pool, method, "/t", body=body, content_type=content_type)

    [sent] = upstream.requests
    if expected is None:
        expected = [f"Content-Length: {len(body or b'')}".encode(), f"Content-Type: {content_type}".encode()]
    host = upstream.url.removeprefix("http://").encode()
    assert sent.request_line == f"{method} /t HTTP/1.1".encode()
    assert sent.header_lines == sorted([b"Host: " + host, b"X-K: v", *expected])
    assert sent.body == (body or b"")


async def test_never_opens_more_than_max_connections_when_20_requests_run_at_once(rig: Rig) -> None:
    gate = asyncio.Event()

    async def answer_after_gate(peer: Peer) -> None:
        while (received := await peer.next_request()) is not None:
            await gate.wait()
            peer.writer.write(answer(body=received.request_line))

    upstream = await rig.upstream(answer_after_gate)
    pool = rig.pool(upstream.url, max_connections=2)

    calls = [asyncio.create_task(fetch(pool, "GET", f"/{i}")) for i in range(20)]
    await upstream.wait_requests(2)
    assert upstream.accepted == 2
    gate.set()
    bodies = await within_guard(asyncio.gather(*calls))

    assert bodies == [f"GET /{i} HTTP/1.1".encode() for i in range(20)]
    assert (upstream.accepted, upstream.peak_open, len(upstream.requests)) == (2, 2, 20)


async def drop_second_request_on_first_connection(peer: Peer) -> None:
    """Answers once on the first connection, then closes it on reading the next request; others serve."""
    if peer.conn_id > 0:
        await echo_target(peer)
        return
    received = await peer.next_request()
    assert received is not None
    peer.writer.write(answer(body=received.request_line))
    await peer.next_request()


@pytest.mark.parametrize(("method", "body"), [("GET", None), ("PUT", b"payload"), ("DELETE", None)])
async def test_resends_once_on_new_connection_when_idempotent_and_reused_connection_drops(
    rig: Rig, method: str, body: bytes | None
) -> None:
    upstream = await rig.upstream(drop_second_request_on_first_connection)
    pool = rig.pool(upstream.url, max_connections=1)
    await fetch(pool, "GET", "/first")

    answered = await fetch(pool, method, "/again", body=body)

    assert answered == f"{method} /again HTTP/1.1".encode()
    first, dropped, resent = upstream.requests
    assert (first.conn_id, dropped.conn_id, resent.conn_id) == (0, 0, 1)
    assert (resent.head, resent.body) == (dropped.head, dropped.body)
    assert upstream.accepted == 2


async def test_post_raises_connection_dropped_and_is_not_resent_when_reused_connection_drops(
    rig: Rig,
) -> None:
    upstream = await rig.upstream(drop_second_request_on_first_connection)
    pool = rig.pool(upstream.url, max_connections=1)
    await fetch(pool, "GET", "/first")

    with pytest.raises(ConnectionDropped):
        await fetch(pool, "POST", "/tasks", body=b"{}")

    assert [r.request_line for r in upstream.requests] == [b"GET /first HTTP/1.1", b"POST /tasks HTTP/1.1"]
    assert upstream.accepted == 1
    assert await fetch(pool, "GET", "/after") == b"GET /after HTTP/1.1"
    assert [r.request_line for r in upstream.requests[2:]] == [b"GET /after HTTP/1.1"]


async def test_does_not_reuse_connection_when_server_closed_it_while_idle(rig: Rig) -> None:
    async def answer_once_then_close(peer: Peer) -> None:
        received = await peer.next_request()
        assert received is not None
        peer.writer.write(answer(body=received.request_line))

    upstream = await rig.upstream(answer_once_then_close)
    pool = rig.pool(upstream.url, max_connections=1)
    response = await pool.request("GET", "/first")
    await response.read()
    probe = ConnectionProbe(response)
    response.release()
    await within_guard(probe.lost.wait())

    # a POST is never resent: it succeeds only if the pool did not write it on the closed connection
    assert await fetch(pool, "POST", "/tasks", body=b"{}") == b"POST /tasks HTTP/1.1"
    assert [r.conn_id for r in upstream.requests] == [0, 1]


async def test_raises_connection_dropped_and_drops_connection_when_answer_is_malformed(rig: Rig) -> None:
    async def garbage_on_second_request(peer: Peer) -> None:
        if peer.conn_id > 0:
            await echo_target(peer)
            return
        await peer.next_request()
        peer.writer.write(answer(body=b"ok"))
        await peer.next_request()
        peer.writer.write(b"HTTP/1.1 2x0 Nope\r\nContent-Length: 0\r\n\r\n")
        await peer.until_closed()

    upstream = await rig.upstream(garbage_on_second_request)
    pool = rig.pool(upstream.url, max_connections=1)
    await fetch(pool, "GET", "/first")

    with pytest.raises(ConnectionDropped):
        await fetch(pool, "GET", "/bad")

    assert len(upstream.requests) == 2  # bytes of an answer came: a GET is not resent either
    await within_guard(upstream.peers[0].gone.wait())
    assert await fetch(pool, "GET", "/next") == b"GET /next HTTP/1.1"
    assert upstream.requests[-1].conn_id == 1


async def test_times_out_closes_connection_and_frees_slot_when_server_never_answers(rig: Rig) -> None:
    async def first_connection_never_answers(peer: Peer) -> None:
        if peer.conn_id > 0:
            await echo_target(peer)
            return
        await peer.until_closed()

    upstream = await rig.upstream(first_connection_never_answers)
    pool = rig.pool(upstream.url, max_connections=1)

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await within_guard(pool.request("GET", "/slow", timeout_s=0.2))
    assert time.monotonic() - started < 2.0

    await within_guard(upstream.peers[0].gone.wait())
    assert await within_guard(fetch(pool, "GET", "/next")) == b"GET /next HTTP/1.1"
    assert upstream.accepted == 2


async def test_raises_connect_failed_and_frees_slot_when_nothing_listens(rig: Rig) -> None:
    with socket.socket() as bound_not_listening:
        bound_not_listening.bind(("127.0.0.1", 0))
        port = bound_not_listening.getsockname()[1]
        pool = rig.pool(f"http://127.0.0.1:{port}", max_connections=1)

        for _ in range(2):  # the second would wait forever for the slot if the first kept it
            with pytest.raises(ConnectFailed):
                await within_guard(pool.request("GET", "/"))


@pytest.mark.parametrize("target", ["/a b", "/a\r\nX-Injected: 1", "/a\nb", "/a\x00", "/a\x1b", "/a\x7f"])
async def test_raises_value_error_and_sends_nothing_when_target_would_break_request_line(
    rig: Rig, target: str
) -> None:
    upstream = await rig.upstream()
    pool = rig.pool(upstream.url)
    await fetch(pool, "GET", "/before")

    with pytest.raises(ValueError, match="target"):
        await pool.request("GET", target)

    await fetch(pool, "GET", "/after")
    assert [r.request_line for r in upstream.requests] == [b"GET /before HTTP/1.1", b"GET /after HTTP/1.1"]
    assert upstream.accepted == 1


async def test_sends_extra_headers_of_one_request_only_when_given(rig: Rig) -> None:
    upstream = await rig.upstream()
    pool = rig.pool(upstream.url, headers={"X-K": "v"})
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    await fetch(pool, "GET", "/traced", headers={"traceparent": traceparent})
    await fetch(pool, "GET", "/plain")

    traced, plain = upstream.requests
    assert f"traceparent: {traceparent}".encode() in traced.header_lines
    assert not any(line.lower().startswith(b"traceparent") for line in plain.header_lines)
    assert b"X-K: v" in traced.header_lines and b"X-K: v" in plain.header_lines


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": "00-a\r\nX-Injected: 1"},
        {"trace\nparent": "x"},
        {"X-A: b": "c"},
        {"X A": "b"},
        {"X": "\x7f"},
    ],
)
async def test_raises_value_error_and_sends_nothing_when_an_extra_header_would_break_the_head(
    rig: Rig, headers: dict[str, str]
) -> None:
    upstream = await rig.upstream()
    pool = rig.pool(upstream.url)

    with pytest.raises(ValueError, match="extra header"):
        await pool.request("GET", "/x", headers=headers)

    await fetch(pool, "GET", "/after")
    assert [r.request_line for r in upstream.requests] == [b"GET /after HTTP/1.1"]


async def test_release_closes_connection_when_body_unread_and_keeps_it_when_read_whole(rig: Rig) -> None:
    upstream = await rig.upstream()
    pool = rig.pool(upstream.url, max_connections=1)

    unread = await pool.request("GET", "/unread")
    unread.release()
    await within_guard(upstream.peers[0].gone.wait())

    assert await fetch(pool, "GET", "/read") == b"GET /read HTTP/1.1"
    assert await fetch(pool, "GET", "/again") == b"GET /again HTTP/1.1"
    assert [r.conn_id for r in upstream.requests] == [0, 1, 1]


async def test_completes_and_reuses_connection_when_answer_is_204_without_body(rig: Rig) -> None:
    async def no_content(peer: Peer) -> None:
        while await peer.next_request() is not None:
            peer.writer.write(b"HTTP/1.1 204 No Content\r\nX-Id: 7\r\n\r\n")

    upstream = await rig.upstream(no_content)
    pool = rig.pool(upstream.url, max_connections=1)

    for _ in range(2):
        async with exchange(pool, "DELETE", "/tasks/1") as response:
            assert (response.status, response.headers["X-Id"]) == (204, "7")
            assert await within_guard(response.read()) == b""

    assert [r.conn_id for r in upstream.requests] == [0, 0]


async def test_close_closes_idle_connections_and_in_use_ones_on_release(rig: Rig) -> None:
    upstream = await rig.upstream()
    pool = rig.pool(upstream.url, max_connections=2)
    async with exchange(pool, "GET", "/held") as in_use:
        await fetch(pool, "GET", "/idle")
        assert [r.conn_id for r in upstream.requests] == [0, 1]

        await pool.close()
        await within_guard(upstream.peers[1].gone.wait())
        assert not upstream.peers[0].gone.is_set()

        assert await in_use.read() == b"GET /held HTTP/1.1"
        in_use.release()
        await within_guard(upstream.peers[0].gone.wait())


async def test_waiting_request_gets_freed_connection_when_another_waiter_is_cancelled(rig: Rig) -> None:
    gate = asyncio.Event()

    async def first_body_after_gate(peer: Peer) -> None:
        await peer.next_request()
        peer.writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
        await gate.wait()
        peer.writer.write(b"ok")
        await echo_target(peer)

    upstream = await rig.upstream(first_body_after_gate)
    pool = rig.pool(upstream.url, max_connections=1)
    holder = await pool.request("GET", "/held")
    cancelled = asyncio.create_task(fetch(pool, "GET", "/cancelled"))
    waiting = asyncio.create_task(fetch(pool, "GET", "/waiting"))
    gate.set()
    assert await holder.read() == b"ok"  # meanwhile both tasks queued for the one connection

    holder.release()  # hands the connection to the first waiter...
    cancelled.cancel()  # ...whose caller gives up in the same instant (a deadline)

    assert await within_guard(waiting) == b"GET /waiting HTTP/1.1"
    assert cancelled.cancelled()
