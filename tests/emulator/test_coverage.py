"""Un-emulated endpoints answer 501 NOT_EMULATED naming the endpoint; the control additions of the issue."""

from __future__ import annotations

import logging
import uuid

import aiohttp
import pytest

from gateway.emulator import EmulatorServer, EmulatorState
from gateway.emulator.coverage import path_template
from tests.emulator.conftest import AUTH
from tests.support.clock import ManualClock


@pytest.mark.parametrize(
    ("method", "path", "template"),
    [
        ("GET", "/api/v1/user-bonuses", "/api/v1/user-bonuses"),
        ("POST", "/api/v1/trainings/12/clone", "/api/v1/trainings/{id}/clone"),
        ("DELETE", "/api/v1/pools/2", "/api/v1/pools/{id}"),
        ("PUT", "/api/v1/tasks", "/api/v1/tasks"),
        ("GET", "/api/v2/anything/0a1b", "/api/v2/anything/{id}"),
    ],
)
async def test_501_not_emulated_names_method_and_path_template(
    http: aiohttp.ClientSession, method: str, path: str, template: str
) -> None:
    resp = await http.request(method, path, json={})
    assert resp.status == 501
    body = await resp.json()
    assert body["code"] == "NOT_EMULATED"
    assert body["payload"]["method"] == method
    assert body["payload"]["path"] == template
    assert f"{method} {template}" in body["message"]


async def test_existing_resource_still_404_when_missing(http: aiohttp.ClientSession) -> None:
    resp = await http.get("/api/v1/pools/999")
    assert resp.status == 404
    assert (await resp.json())["code"] == "DOES_NOT_EXIST"


def test_path_template_keeps_words_and_replaces_ids() -> None:
    assert path_template("/api/v1/pools/17/close-for-update") == "/api/v1/pools/{id}/close-for-update"
    assert path_template("/api/v1/assignments/000a--ff") == "/api/v1/assignments/{id}"


async def test_reset_undoes_clock_advances(emu: EmulatorServer, clock: ManualClock) -> None:
    async with aiohttp.ClientSession(emu.url) as s:
        advanced = await (await s.post("/_emulator/clock/advance", json={"seconds": 86400})).json()
        assert advanced["now"] == clock.now() + 86400
        assert (await s.post("/_emulator/reset")).status == 200
        pool = await (await s.get("/api/v1/pools/1", headers=AUTH)).json()
    assert emu.state.now() == clock.now()
    assert pool["created"].startswith("2023-11-14")


async def test_operations_finish_at_once_when_asked(emu: EmulatorServer, state: EmulatorState) -> None:
    state.operation_duration_s = 3600.0
    op_id = str(uuid.uuid4())
    task = {"pool_id": "1", "input_values": {"a": 1}, "overlap": 1}
    async with aiohttp.ClientSession(emu.url) as s:
        created = await s.post(
            f"/api/v1/tasks?async_mode=true&operation_id={op_id}", json=[task], headers=AUTH
        )
        assert (await created.json())["status"] == "PENDING"
        assert (await (await s.get("/api/v1/tasks?pool_id=1", headers=AUTH)).json())["items"] == []
        finished = await (await s.post("/_emulator/operations/finish")).json()
        op = await (await s.get(f"/api/v1/operations/{op_id}", headers=AUTH)).json()
        tasks = (await (await s.get("/api/v1/tasks?pool_id=1", headers=AUTH)).json())["items"]
        config = await (await s.post("/_emulator/config", json={"instant_operations": True})).json()
    assert finished == {"finished": 1}
    assert op["status"] == "SUCCESS"
    assert len(tasks) == 1
    assert config["operation_duration_s"] == 0.0
    assert config["pool_operation_duration_s"] == 0.0


async def test_one_info_line_per_request(
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.emulator.app"):
        await http.get("/api/v1/pools/1")
        await http.get("/api/v1/nothing")
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.emulator.app"]
    assert len(lines) == 2
    assert lines[0].startswith("GET /api/v1/pools/1 -> 200")
    assert lines[1].startswith("GET /api/v1/nothing -> 501")
