"""The REST front: toloka-kit works through it unchanged, the key is swapped, bad input never leaves."""

from __future__ import annotations

import io
from pathlib import Path

import aiohttp
import pytest

from tests.rest.conftest import GATEWAY_KEY, TOKENS, Front, run_kit


def assert_toloka_error(body: dict[str, object], code: str) -> None:
    assert body["code"] == code, body
    assert isinstance(body["request_id"], str) and body["request_id"]
    assert isinstance(body["message"], str) and body["message"]
    text = str(body)
    assert GATEWAY_KEY not in text and "Traceback" not in text and "Error'" not in text


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_toloka_kit_works_through_the_front_when_pointed_at_it(
    front: Front, kit_python: Path, mode: str
) -> None:
    result = await run_kit(kit_python, front.url, TOKENS["writer"], mode, "basics")
    assert result["created"] == 3
    seen = await front.emulator_requests()
    # Every call reached the emulator, which accepts the gateway's key only: the caller's token was swapped.
    assert {r["path"] for r in seen} >= {"/api/v1/pools/1", "/api/v1/tasks", "/api/v1/pools/1/open"}
    assert all(r["auth_scheme"] == "OAuth" for r in seen)


async def test_caller_token_is_refused_by_the_emulator_when_sent_directly(front: Front) -> None:
    """The check above can fail: the emulator refuses any key but the gateway's."""
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{front.emulator.url}/api/v1/pools/1", headers=front.auth()) as r,
    ):
        assert r.status == 401


async def test_wrong_token_is_401_and_never_forwarded_when_it_matches_no_caller(front: Front) -> None:
    before = len(await front.emulator_requests())
    async with aiohttp.ClientSession() as s:
        for header in ("OAuth not-a-token", "ApiKey " + GATEWAY_KEY, "", "Basic abc"):
            async with s.get(f"{front.url}/api/v1/pools/1", headers={"Authorization": header}) as r:
                assert r.status == 401, header
                assert_toloka_error(await r.json(), "AUTHENTICATION_ERROR")
    assert len(await front.emulator_requests()) == before


async def test_read_only_caller_gets_403_when_it_writes(front: Front) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{front.url}/api/v1/pools/2", headers=front.auth("reader")) as r:
            assert r.status == 200
            assert (await r.json())["id"] == "2"
        async with s.post(f"{front.url}/api/v1/pools/1/open", headers=front.auth("reader")) as r:
            assert r.status == 403
            assert_toloka_error(await r.json(), "ACCESS_DENIED")
    assert not await front.emulator_requests("/api/v1/pools/1/open")


async def test_pool_limited_caller_gets_403_when_it_names_another_pool(front: Front) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{front.url}/api/v1/pools/4", headers=front.auth("pool4")) as r:
            assert r.status == 200
        async with s.get(
            f"{front.url}/api/v1/tasks", params={"pool_id": "2"}, headers=front.auth("pool4")
        ) as r:
            assert r.status == 403
            assert_toloka_error(await r.json(), "ACCESS_DENIED")
        async with s.get(f"{front.url}/api/v1/projects", headers=front.auth("pool4")) as r:
            assert r.status == 403


async def test_bad_paths_and_bodies_get_toloka_errors_when_sent_and_are_never_forwarded(front: Front) -> None:
    before = len(await front.emulator_requests(""))
    async with aiohttp.ClientSession() as s:
        for path, status, code in (
            ("/_emulator/config", 404, "DOES_NOT_EXIST"),
            ("/api/v2/pools/1", 404, "DOES_NOT_EXIST"),
            ("/api/v1/../_emulator/reset", 404, "DOES_NOT_EXIST"),
            ("/api/v1/pools/%2e%2e/%2e%2e/_emulator/reset", 404, "DOES_NOT_EXIST"),
        ):
            async with s.post(f"{front.url}{path}", headers=front.auth(), skip_auto_headers=()) as r:
                assert r.status == status, path
                assert_toloka_error(await r.json(), code)
        async with s.post(f"{front.url}/api/v1/pools", data=b"{not json", headers=front.auth()) as r:
            assert r.status == 400
            assert_toloka_error(await r.json(), "VALIDATION_ERROR")
        big = b"[" + b"1," * (1024 * 1024) + b"1]"
        async with s.post(f"{front.url}/api/v1/tasks", data=io.BytesIO(big), headers=front.auth()) as r:
            assert r.status == 413
            assert_toloka_error(await r.json(), "ENTITY_TOO_LARGE")
        async with s.get(
            f"{front.url}/api/v1/pools/1", headers={**front.auth(), "X-Request-Timeout": "soon"}
        ) as r:
            assert r.status == 400
            assert_toloka_error(await r.json(), "VALIDATION_ERROR")
    assert len(await front.emulator_requests("")) == before


async def test_toloka_refusal_reaches_the_caller_unchanged_when_toloka_refuses(front: Front) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{front.url}/api/v1/pools/3/open", headers=front.auth()) as r:
            direct_status = r.status
            body = await r.json()
        async with s.post(
            f"{front.emulator.url}/api/v1/pools/3/open", headers={"Authorization": f"OAuth {GATEWAY_KEY}"}
        ) as r:
            assert r.status == direct_status == 409
            direct = await r.json()
    assert {k: body[k] for k in ("code", "message")} == {k: direct[k] for k in ("code", "message")}
