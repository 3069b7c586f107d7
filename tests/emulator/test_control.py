"""The `/_emulator/` control endpoints and the server helpers."""

from __future__ import annotations

import uuid

import aiohttp
import pytest

from gateway.emulator import EmulatorServer, EmulatorState
from gateway.emulator.server import parse_listen
from tests.emulator.conftest import AUTH

TASK = {"pool_id": "1", "input_values": {"a": 1}, "overlap": 1}


async def test_url_has_no_trailing_slash_and_real_port_when_port_zero(emu: EmulatorServer) -> None:
    assert emu.url.startswith("http://127.0.0.1:")
    assert emu.port > 0
    assert not emu.url.endswith("/")


async def test_requests_listed_and_filtered_without_recording_control_calls(emu: EmulatorServer) -> None:
    async with aiohttp.ClientSession(emu.url) as s:
        op_id = str(uuid.uuid4())
        await s.post(f"/api/v1/tasks?async_mode=true&operation_id={op_id}", json=TASK, headers=AUTH)
        await s.get("/api/v1/pools/1", headers=AUTH)
        everything = await (await s.get("/_emulator/requests")).json()
        posts = await (await s.get("/_emulator/requests?method=post&path=/api/v1/tasks")).json()
    assert [r["method"] for r in everything] == ["POST", "GET"]
    assert len(posts) == 1
    assert posts[0]["operation_id"] == op_id
    assert posts[0]["auth_scheme"] == "OAuth"
    assert posts[0]["query"]["async_mode"] == "true"


async def test_fault_added_and_cleared_when_using_control_api(emu: EmulatorServer) -> None:
    async with aiohttp.ClientSession(emu.url) as s:
        resp = await s.post(
            "/_emulator/faults", json={"method": "GET", "path": "/pools/", "status": 503, "times": None}
        )
        assert resp.status == 201
        assert (await s.get("/api/v1/pools/1", headers=AUTH)).status == 503
        assert len(await (await s.get("/_emulator/faults")).json()) == 1
        assert (await s.delete("/_emulator/faults")).status == 200
        assert (await s.get("/api/v1/pools/1", headers=AUTH)).status == 200
        bad = await s.post("/_emulator/faults", json={"nonsense": 1})
        assert bad.status == 400


async def test_pool_seeded_when_posted_to_control_api(emu: EmulatorServer) -> None:
    async with aiohttp.ClientSession(emu.url) as s:
        resp = await s.post("/_emulator/pools", json={"status": "OPEN", "priority": 7})
        assert resp.status == 201
        pool = await resp.json()
        fetched = await (await s.get(f"/api/v1/pools/{pool['id']}", headers=AUTH)).json()
    assert pool["id"] == "5"
    assert fetched == pool
    assert (fetched["status"], fetched["priority"]) == ("OPEN", 7)


async def test_config_changes_operation_duration_when_posted(emu: EmulatorServer) -> None:
    async with aiohttp.ClientSession(emu.url) as s:
        resp = await s.post("/_emulator/config", json={"operation_duration_s": 30, "valid_api_keys": None})
        assert (await resp.json())["operation_duration_s"] == 30.0
        op = await (await s.post("/api/v1/tasks?async_mode=true", json=TASK, headers=AUTH)).json()
        assert op["status"] == "PENDING"
        await s.post("/_emulator/clock/advance", json={"seconds": 30})
        op = await (await s.get(f"/api/v1/operations/{op['id']}", headers=AUTH)).json()
        assert op["status"] == "SUCCESS"
        assert (await s.post("/_emulator/config", json={"bogus": 1})).status == 400


async def test_state_forgotten_and_pools_reseeded_when_reset(emu: EmulatorServer) -> None:
    async with aiohttp.ClientSession(emu.url) as s:
        await s.post("/api/v1/pools/1/archive", headers=AUTH)
        await s.post("/_emulator/faults", json={"status": 500, "times": None})
        assert (await s.post("/_emulator/reset")).status == 200
        pool = await (await s.get("/api/v1/pools/1", headers=AUTH)).json()
        assert pool["status"] == "CLOSED"
        assert len(await (await s.get("/_emulator/requests")).json()) == 1


def test_seed_pool_defaults_every_writable_field_when_no_fields(state: EmulatorState) -> None:
    pool = state.seed_pool()
    for name in (
        "project_id",
        "private_name",
        "may_contain_adult_content",
        "will_expire",
        "reward_per_assignment",
        "assignment_max_duration_seconds",
        "defaults",
        "auto_accept_solutions",
        "priority",
        "quality_control",
        "mixer_config",
    ):
        assert name in pool
    assert pool["status"] == "CLOSED"


def test_listen_parsed_when_host_port_or_ipv6() -> None:
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen("[::]:9000") == ("::", 9000)
    with pytest.raises(ValueError):
        parse_listen("nope")
