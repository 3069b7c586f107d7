"""Fault injection and authentication."""

from __future__ import annotations

import time
import uuid

import aiohttp
import pytest

from gateway.emulator import EmulatorServer, EmulatorState, Fault, RecordedRequest
from tests.emulator.conftest import AUTH

TASK = {"pool_id": "1", "input_values": {"a": 1}, "overlap": 1}


async def test_status_fault_answers_toloka_error_then_clears_when_times_used(
    http: aiohttp.ClientSession, state: EmulatorState
) -> None:
    state.add_fault(Fault(method="GET", path=r"^/api/v1/pools/", status=500, times=2))
    for _ in range(2):
        resp = await http.get("/api/v1/pools/1")
        assert resp.status == 500
        body = await resp.json()
        assert body["code"] == "INTERNAL_ERROR" and body["request_id"] and body["message"]
    assert (await http.get("/api/v1/pools/1")).status == 200


async def test_fault_only_matches_method_and_path(http: aiohttp.ClientSession, state: EmulatorState) -> None:
    state.add_fault(Fault(method="POST", path=r"/tasks$", status=503, times=None))
    assert (await http.get("/api/v1/pools/1")).status == 200
    assert (await http.get("/api/v1/tasks")).status == 200
    for _ in range(3):
        resp = await http.post("/api/v1/tasks", json=TASK)
        assert resp.status == 503
        assert (await resp.json())["code"] == "REMOTE_SERVICE_UNAVAILABLE"
    state.clear_faults()
    assert (await http.post("/api/v1/tasks", json=TASK)).status == 201


async def test_429_without_retry_hints_when_not_asked(
    http: aiohttp.ClientSession, state: EmulatorState
) -> None:
    state.add_fault(Fault(status=429))
    resp = await http.get("/api/v1/pools/1")
    assert resp.status == 429
    assert "Retry-After" not in resp.headers
    body = await resp.json()
    assert body["code"] == "TOO_MANY_REQUESTS"
    assert "payload" not in body


async def test_429_carries_retry_after_and_interval_when_configured(
    http: aiohttp.ClientSession, state: EmulatorState
) -> None:
    state.add_fault(Fault(status=429, retry_after=2, interval="MIN"))
    resp = await http.get("/api/v1/pools/1")
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "2"
    assert (await resp.json())["payload"] == {"interval": "MIN"}


async def test_latency_fault_delays_then_handles_normally(
    http: aiohttp.ClientSession, state: EmulatorState
) -> None:
    state.add_fault(Fault(path="/pools/1$", latency_s=0.2))
    started = time.perf_counter()
    resp = await http.get("/api/v1/pools/1")
    assert resp.status == 200
    assert time.perf_counter() - started >= 0.19


async def test_client_sees_disconnect_and_operation_exists_when_drop_after_work(
    http: aiohttp.ClientSession, state: EmulatorState
) -> None:
    state.add_fault(Fault(method="POST", path="^/api/v1/tasks$", drop_after_work=True))
    op_id = str(uuid.uuid4())
    url = f"/api/v1/tasks?async_mode=true&operation_id={op_id}"
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await http.post(url, json=TASK)
    resp = await http.get(f"/api/v1/operations/{op_id}")
    assert resp.status == 200
    assert (await resp.json())["status"] == "SUCCESS"
    assert (await http.post(url, json=TASK)).status == 409


async def test_client_sees_disconnect_and_nothing_done_when_drop_before_work(
    http: aiohttp.ClientSession, state: EmulatorState
) -> None:
    state.add_fault(Fault(method="POST", drop_before_work=True))
    op_id = str(uuid.uuid4())
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await http.post(f"/api/v1/tasks?async_mode=true&operation_id={op_id}", json=TASK)
    assert op_id not in state.operations


async def test_401_when_authorization_missing_or_malformed(emu: EmulatorServer) -> None:
    async with aiohttp.ClientSession(emu.url) as anon:
        for headers in ({}, {"Authorization": "Bearer x"}, {"Authorization": "OAuth "}):
            resp = await anon.get("/api/v1/pools/1", headers=headers)
            assert resp.status == 401
            assert (await resp.json())["code"] == "AUTHENTICATION_ERROR"


async def test_any_key_accepted_for_both_schemes_when_no_valid_keys_set(emu: EmulatorServer) -> None:
    async with aiohttp.ClientSession(emu.url) as session:
        for header in ("OAuth abc", "ApiKey abcdefghijklmnopqrstuvw.x.y"):
            assert (await session.get("/api/v1/pools/1", headers={"Authorization": header})).status == 200
    assert [r.auth_scheme for r in emu.state.requests] == ["OAuth", "ApiKey"]


async def test_401_when_key_not_in_valid_api_keys(emu: EmulatorServer) -> None:
    emu.state.valid_api_keys = {"good"}
    async with aiohttp.ClientSession(emu.url) as session:
        resp = await session.get("/api/v1/pools/1", headers=AUTH)
        assert resp.status == 401
        assert (await resp.json())["code"] == "AUTHENTICATION_ERROR"
        assert (await session.get("/api/v1/pools/1", headers={"Authorization": "ApiKey good"})).status == 200


async def test_unknown_route_answers_toloka_shaped_501_not_emulated(http: aiohttp.ClientSession) -> None:
    resp = await http.get("/api/v1/nothing-here")
    assert resp.status == 501
    body = await resp.json()
    assert body["code"] == "NOT_EMULATED"
    assert body["request_id"]
    assert "GET /api/v1/nothing-here" in body["message"]


async def test_get_sees_disconnect_when_drop_fault_covers_aiohttp_retry(
    http: aiohttp.ClientSession, state: EmulatorState
) -> None:
    state.add_fault(Fault(method="GET", drop_before_work=True, times=2))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await http.get("/api/v1/pools/1")
    assert len(state.requests) == 2


def test_oldest_requests_dropped_when_log_exceeds_cap() -> None:
    state = EmulatorState(max_recorded_requests=10)
    for i in range(25):
        state.record(RecordedRequest(float(i), float(i), "GET", "/api/v1/x", {}, 0, None, "OAuth"))
    assert 10 <= len(state.requests) <= 11
    assert state.requests[-1].monotonic == 24.0
