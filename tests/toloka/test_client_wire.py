"""What TolokaClient puts on the wire, read byte for byte by a real upstream."""

from __future__ import annotations

from gateway.call import Call
from gateway.ratelimit.factory import build_rate_limiter
from gateway.settings import RateLimitSettings, TolokaSettings, default_limits
from gateway.toloka.client import TolokaClient
from tests.toloka.http1_upstream import Peer, Upstream, answer


async def test_requests_ask_for_identity_coding_when_sent_to_toloka() -> None:
    """The pool decodes no content coding, and without Accept-Encoding a server may pick any."""

    async def pool_json(peer: Peer) -> None:
        while await peer.next_request() is not None:
            peer.writer.write(answer(body=b'{"id": "1"}', extra=b"Content-Type: application/json\r\n"))

    upstream = await Upstream(pool_json).start()
    client = TolokaClient(
        settings=TolokaSettings(url=upstream.url, api_key="k"),
        base_url=upstream.url,
        limiter=build_rate_limiter(RateLimitSettings(limits=default_limits()), None),
    )
    try:
        assert await client.get_pool("1", Call()) == {"id": "1"}
    finally:
        await client.close()
        await upstream.stop()
    (received,) = upstream.requests
    assert received.request_line == b"GET /api/v1/pools/1 HTTP/1.1"
    assert b"Accept-Encoding: identity" in received.header_lines
