"""Pools: GET, PUT, PATCH and state-changing operations."""

from __future__ import annotations

import copy
from typing import Any

import aiohttp

from gateway.emulator import EmulatorState
from tests.support.clock import ManualClock

REWORK = {
    "collector_config": {"type": "ASSIGNMENTS_ASSESSMENT"},
    "rules": [
        {
            "conditions": [{"key": "assessment_event", "operator": "EQ", "value": "REJECT"}],
            "action": {"type": "CHANGE_OVERLAP", "parameters": {"delta": 1, "open_pool": True}},
        }
    ],
}


async def _get(http: aiohttp.ClientSession, pool_id: str) -> dict[str, Any]:
    resp = await http.get(f"/api/v1/pools/{pool_id}")
    assert resp.status == 200
    body: dict[str, Any] = await resp.json()
    return body


async def test_seeded_pools_have_documented_shapes_when_fresh(http: aiohttp.ClientSession) -> None:
    one, two, three, four = [await _get(http, p) for p in "1234"]
    assert (
        one["status"],
        one["auto_accept_solutions"],
        one["defaults"]["default_overlap_for_new_tasks"],
    ) == (
        "CLOSED",
        True,
        3,
    )
    assert (two["status"], two["auto_accept_solutions"]) == ("OPEN", False)
    types = [c["collector_config"]["type"] for c in two["quality_control"]["configs"]]
    assert types == ["GOLDEN_SET", "USERS_ASSESSMENT"]
    assert all(c["collector_config"]["uuid"] for c in two["quality_control"]["configs"])
    assert three["status"] == "ARCHIVED"
    assert four["status"] == "CLOSED"
    assert "default_overlap_for_new_tasks" not in four["defaults"]


async def test_404_does_not_exist_when_pool_unknown(http: aiohttp.ClientSession) -> None:
    for method, suffix in (("GET", ""), ("PUT", ""), ("PATCH", ""), ("POST", "/open"), ("POST", "/close")):
        resp = await http.request(method, f"/api/v1/pools/404{suffix}", json={"priority": 1})
        assert resp.status == 404
        assert (await resp.json())["code"] == "DOES_NOT_EXIST"


async def test_put_refused_with_409_when_pool_open(http: aiohttp.ClientSession) -> None:
    pool = await _get(http, "2")
    resp = await http.put("/api/v1/pools/2", json=pool)
    assert resp.status == 409
    body = await resp.json()
    assert body["code"] == "INAPPROPRIATE_STATUS"
    assert body["payload"] == {"appropriate_statuses": ["CLOSED"]}


async def test_put_keeps_given_uuids_and_assigns_new_when_closed_for_update(
    http: aiohttp.ClientSession, state: EmulatorState, clock: ManualClock
) -> None:
    state.pool_operation_duration_s = 1.0
    resp = await http.post("/api/v1/pools/2/close-for-update")
    assert resp.status == 202
    op = await resp.json()
    assert (op["type"], op["status"], op["parameters"]) == ("POOL.CLOSE", "PENDING", {"pool_id": "2"})
    await clock.advance(1.0)
    assert (await (await http.get(f"/api/v1/operations/{op['id']}")).json())["status"] == "SUCCESS"
    pool = await _get(http, "2")
    assert (pool["status"], pool["last_close_reason"]) == ("CLOSED", "FOR_UPDATE")
    old_uuids = [c["collector_config"]["uuid"] for c in pool["quality_control"]["configs"]]

    pool["quality_control"]["configs"].append(copy.deepcopy(REWORK))
    pool["private_comment"] = "changed"
    pool["status"] = "OPEN"  # read-only: ignored
    pool["id"] = "999"
    resp = await http.put("/api/v1/pools/2", json=pool)
    assert resp.status == 200
    updated = await resp.json()
    uuids = [c["collector_config"]["uuid"] for c in updated["quality_control"]["configs"]]
    assert uuids[:2] == old_uuids
    assert uuids[2] and uuids[2] not in old_uuids
    assert (updated["id"], updated["status"], updated["private_comment"]) == ("2", "CLOSED", "changed")
    assert await _get(http, "2") == updated


async def test_pool_reopens_by_itself_when_15_minutes_pass_after_close_for_update(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    assert (await http.post("/api/v1/pools/2/close-for-update")).status == 202
    await clock.advance(899)
    assert (await _get(http, "2"))["status"] == "CLOSED"
    await clock.advance(1)
    assert (await _get(http, "2"))["status"] == "OPEN"


async def test_no_auto_reopen_when_closed_manually_after_update(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    assert (await http.post("/api/v1/pools/2/close-for-update")).status == 202
    assert (await http.post("/api/v1/pools/2/open")).status == 202
    assert (await http.post("/api/v1/pools/2/close")).status == 202
    await clock.advance(1000)
    assert (await _get(http, "2"))["status"] == "CLOSED"


async def test_put_400_with_field_paths_when_quality_control_malformed(http: aiohttp.ClientSession) -> None:
    pool = await _get(http, "1")
    pool["quality_control"] = {
        "configs": [
            {"collector_config": {}, "rules": [{"conditions": [{"key": "x", "operator": "BAD", "value": 1}]}]}
        ]
    }
    resp = await http.put("/api/v1/pools/1", json=pool)
    assert resp.status == 400
    body = await resp.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert set(body["payload"]) == {
        "quality_control.configs[0].collector_config.type",
        "quality_control.configs[0].rules[0].conditions[0].operator",
        "quality_control.configs[0].rules[0].action",
    }


async def test_put_409_when_pool_archived(http: aiohttp.ClientSession) -> None:
    pool = await _get(http, "3")
    resp = await http.put("/api/v1/pools/3", json=pool)
    assert resp.status == 409
    assert (await resp.json())["code"] == "INAPPROPRIATE_STATUS"


async def test_429_when_overlap_changes_exceed_limit_per_hour(
    http: aiohttp.ClientSession, state: EmulatorState, clock: ManualClock
) -> None:
    state.overlap_changes_per_hour = 2
    pool = await _get(http, "1")

    async def put_with_overlap(n: int) -> int:
        pool["defaults"]["default_overlap_for_new_tasks"] = n
        return (await http.put("/api/v1/pools/1", json=pool)).status

    assert [await put_with_overlap(n) for n in (4, 5)] == [200, 200]
    pool["private_comment"] = "not an overlap change"
    assert (await http.put("/api/v1/pools/1", json=pool)).status == 200
    resp_status = await put_with_overlap(6)
    assert resp_status == 429
    await clock.advance(3601)
    assert await put_with_overlap(6) == 200


async def test_rework_rule_change_counts_as_overlap_change(
    http: aiohttp.ClientSession, state: EmulatorState
) -> None:
    state.overlap_changes_per_hour = 1
    pool = await _get(http, "1")
    pool["quality_control"] = {"configs": [copy.deepcopy(REWORK)]}
    assert (await http.put("/api/v1/pools/1", json=pool)).status == 200
    pool["quality_control"]["configs"][0]["rules"][0]["action"]["parameters"]["delta"] = 2
    resp = await http.put("/api/v1/pools/1", json=pool)
    assert resp.status == 429
    assert (await resp.json())["code"] == "TOO_MANY_REQUESTS"


async def test_patch_priority_returns_full_pool(http: aiohttp.ClientSession) -> None:
    resp = await http.patch("/api/v1/pools/2", json={"priority": 42})
    assert resp.status == 200
    body = await resp.json()
    assert body["priority"] == 42
    assert body["id"] == "2" and "quality_control" in body


async def test_patch_400_when_other_keys_or_out_of_range(http: aiohttp.ClientSession) -> None:
    resp = await http.patch("/api/v1/pools/1", json={"priority": 1, "private_name": "x"})
    assert resp.status == 400
    assert "private_name" in (await resp.json())["payload"]
    assert (await http.patch("/api/v1/pools/1", json={"priority": 101})).status == 400


async def test_patch_409_empty_body_when_archived(http: aiohttp.ClientSession) -> None:
    resp = await http.patch("/api/v1/pools/3", json={"priority": 1})
    assert resp.status == 409
    assert await resp.read() == b""


async def test_open_202_then_204_when_already_open(
    http: aiohttp.ClientSession, state: EmulatorState, clock: ManualClock
) -> None:
    state.pool_operation_duration_s = 0.5
    await http.post("/api/v1/tasks", json={"pool_id": "1", "input_values": {"a": 1}, "overlap": 1})
    resp = await http.post("/api/v1/pools/1/open")
    assert resp.status == 202
    op = await resp.json()
    assert op["type"] == "POOL.OPEN"
    assert (await _get(http, "1"))["status"] == "CLOSED"
    await clock.advance(0.5)
    assert (await _get(http, "1"))["status"] == "OPEN"
    resp = await http.post("/api/v1/pools/1/open")
    assert resp.status == 204
    assert await resp.read() == b""


async def test_close_202_then_204_when_already_closed(http: aiohttp.ClientSession) -> None:
    resp = await http.post("/api/v1/pools/2/close")
    assert resp.status == 202
    assert (await resp.json())["status"] == "SUCCESS"
    pool = await _get(http, "2")
    assert (pool["status"], pool["last_close_reason"]) == ("CLOSED", "MANUAL")
    assert (await http.post("/api/v1/pools/2/close")).status == 204
    assert (await http.post("/api/v1/pools/2/close-for-update")).status == 204


async def test_409_empty_pool_when_opening_pool_without_tasks(http: aiohttp.ClientSession) -> None:
    resp = await http.post("/api/v1/pools/1/open")
    assert resp.status == 409
    body = await resp.json()
    assert body["code"] == "EMPTY_POOL"
    assert body["message"] == "Pool contains no tasks. Operation is not allowed"


async def test_409_inappropriate_status_when_action_on_archived_pool(http: aiohttp.ClientSession) -> None:
    for action in ("open", "close", "close-for-update"):
        resp = await http.post(f"/api/v1/pools/3/{action}")
        assert resp.status == 409
        assert (await resp.json())["code"] == "INAPPROPRIATE_STATUS"
    assert (await http.post("/api/v1/pools/3/archive")).status == 204


async def test_archive_closed_pool_when_requested(http: aiohttp.ClientSession) -> None:
    resp = await http.post("/api/v1/pools/1/archive")
    assert resp.status == 202
    assert (await resp.json())["type"] == "POOL.ARCHIVE"
    assert (await _get(http, "1"))["status"] == "ARCHIVED"


async def test_409_locked_when_pool_operation_in_progress(
    http: aiohttp.ClientSession, state: EmulatorState
) -> None:
    state.pool_operation_duration_s = 5.0
    assert (await http.post("/api/v1/pools/2/close")).status == 202
    resp = await http.post("/api/v1/pools/2/open")
    assert resp.status == 409
    assert (await resp.json())["code"] == "POOL_LOCKED_BY_ANOTHER_OPERATION"
