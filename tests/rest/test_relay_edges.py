"""What Toloka says reaches the caller without surprises: no key, no crash-inducing 429, a bounded wait."""

from __future__ import annotations

import time
from pathlib import Path

import aiohttp

from gateway.emulator.faults import Fault
from gateway.toloka.relay import end_to_end_headers
from tests.rest.conftest import GATEWAY_KEY, TOKENS, Front, run_kit


async def test_gateway_key_is_blanked_when_toloka_echoes_it_in_an_error(front: Front) -> None:
    echo = f"bad header Authorization: OAuth {GATEWAY_KEY}"
    front.emulator.state.add_fault(Fault(method="GET", path="/api/v1/pools/1$", status=400, message=echo))
    async with aiohttp.ClientSession() as s, s.get(f"{front.url}/api/v1/pools/1", headers=front.auth()) as r:
        assert r.status == 400
        text = await r.text()
    assert GATEWAY_KEY not in text
    assert "bad header Authorization" in text  # Toloka's own body, relayed with the key blanked out


async def test_toloka_kit_retries_when_toloka_answers_429_with_retry_after_and_a_minute_interval(
    front: Front, kit_python: Path
) -> None:
    """Relayed as is, this 429 would crash toloka-kit 1.2.3 (toloka-api.md 5.4); the gateway's own does not."""
    front.emulator.state.add_fault(
        Fault(method="GET", path="/api/v1/pools/1$", status=429, retry_after=1, interval="MIN", times=1)
    )
    for mode in ("sync", "async"):
        assert await run_kit(kit_python, front.url, TOKENS["writer"], mode, "get") == {"pool": "1"}
        front.emulator.state.add_fault(
            Fault(method="GET", path="/api/v1/pools/1$", status=429, retry_after=1, interval="MIN", times=1)
        )


async def test_gateway_429_has_no_retry_after_when_toloka_throttles(front: Front) -> None:
    front.emulator.state.add_fault(
        Fault(method="GET", path="/api/v1/pools/1$", status=429, retry_after=1, interval="MIN", times=None)
    )
    async with aiohttp.ClientSession() as s, s.get(f"{front.url}/api/v1/pools/1", headers=front.auth()) as r:
        assert r.status == 429
        assert "Retry-After" not in r.headers
        body = await r.json()
    assert body["code"] == "TOO_MANY_REQUESTS"
    assert "interval" not in body.get("payload", {})
    assert body["payload"]["retry_after_seconds"] >= 1


async def test_request_timeout_header_bounds_the_wait_when_toloka_is_slow(front: Front) -> None:
    front.emulator.state.add_fault(Fault(method="GET", path="/api/v1/pools/1$", latency_s=5.0))
    started = time.monotonic()
    headers = {**front.auth(), "X-Request-Timeout": "300ms"}
    async with aiohttp.ClientSession() as s, s.get(f"{front.url}/api/v1/pools/1", headers=headers) as r:
        assert r.status == 504
        assert (await r.json())["code"] == "DEADLINE_EXCEEDED"
    assert time.monotonic() - started < 2.0


def test_hop_by_hop_headers_are_dropped_when_relayed() -> None:
    relayed = end_to_end_headers(
        {
            "Content-Type": "application/json",
            "Connection": "keep-alive, X-Private",
            "Keep-Alive": "timeout=5",
            "X-Private": "1",
            "Transfer-Encoding": "chunked",
            "Retry-After": "30",
            "X-Toloka-Thing": "kept",
            "Content-Length": "12",
        }
    )
    assert relayed == {"Content-Type": "application/json", "X-Toloka-Thing": "kept"}


def test_content_coding_goes_with_the_body_when_relayed() -> None:
    """The pool decodes no content coding: the body is relayed as it came, so its coding must be too."""
    relayed = end_to_end_headers({"Content-Encoding": "gzip", "Content-Length": "20", "Content-Type": "a/b"})
    assert relayed == {"Content-Encoding": "gzip", "Content-Type": "a/b"}
