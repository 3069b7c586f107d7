"""Asynchronous `POST /api/v1/tasks` and the operations it creates."""

from __future__ import annotations

import uuid

import aiohttp

from gateway.emulator import EmulatorState
from tests.support.clock import ManualClock


def task(pool_id: str = "1", **extra: object) -> dict[str, object]:
    return {"pool_id": pool_id, "input_values": {"image": "http://x/1.png"}, "overlap": 1, **extra}


async def test_operation_moves_pending_running_success_when_clock_advances(
    http: aiohttp.ClientSession, state: EmulatorState, clock: ManualClock
) -> None:
    state.operation_duration_s = 10.0
    op_id = str(uuid.uuid4())
    resp = await http.post(f"/api/v1/tasks?async_mode=true&operation_id={op_id}", json=[task(), task()])
    assert resp.status == 202
    op = await resp.json()
    assert op["id"] == op_id
    assert op["type"] == "TASK.BATCH_CREATE"
    assert op["status"] == "PENDING"
    assert op["progress"] == 0
    assert op["parameters"] == {"skip_invalid_items": False, "allow_defaults": False, "open_pool": False}
    assert "started" not in op
    assert len(op["submitted"]) == 23 and not op["submitted"].endswith("Z")

    await clock.advance(5.5)  # 1 s pending, then 9 s of running: 4.5/9 = 50 %
    running = await (await http.get(f"/api/v1/operations/{op_id}")).json()
    assert running["status"] == "RUNNING"
    assert running["progress"] == 50
    assert "started" in running and "finished" not in running
    assert await (await http.get(f"/api/v1/operations/{op_id}/log")).json() == []
    listed = await (await http.get("/api/v1/tasks?pool_id=1")).json()
    assert listed["items"] == []

    await clock.advance(4.5)
    done = await (await http.get(f"/api/v1/operations/{op_id}")).json()
    assert done["status"] == "SUCCESS"
    assert done["progress"] == 100
    assert done["details"]["success_count"] == 2
    assert "finished" in done
    listed = await (await http.get("/api/v1/tasks?pool_id=1")).json()
    assert len(listed["items"]) == 2


async def test_operation_already_success_in_first_response_when_duration_zero(
    http: aiohttp.ClientSession,
) -> None:
    op = await (await http.post("/api/v1/tasks?async_mode=true", json=task())).json()
    assert op["status"] == "SUCCESS"
    uuid.UUID(op["id"])


async def test_409_operation_already_exists_when_operation_id_reused(
    http: aiohttp.ClientSession, state: EmulatorState
) -> None:
    op_id = str(uuid.uuid4())
    url = f"/api/v1/tasks?async_mode=true&operation_id={op_id}"
    assert (await http.post(url, json=task())).status == 202
    resp = await http.post(url, json=task())
    assert resp.status == 409
    assert (await resp.json())["code"] == "OPERATION_ALREADY_EXISTS"
    assert len(state.pool_task_ids["1"]) == 1
    posts = [r for r in state.requests if r.method == "POST" and r.operation_id == op_id]
    assert len(posts) == 2


async def test_400_when_operation_id_malformed(http: aiohttp.ClientSession) -> None:
    resp = await http.post("/api/v1/tasks?async_mode=true&operation_id=not-a-uuid", json=task())
    assert resp.status == 400
    assert (await resp.json())["payload"]["operation_id"]["code"] == "INVALID_UUID"


async def test_log_has_create_and_validate_items_in_input_order_when_skip_invalid_items(
    http: aiohttp.ClientSession,
) -> None:
    items = [
        task(__item_idx="0"),
        task(input_values={}, __item_idx="1"),
        task(__item_idx="2", extra={"k": 1}),
    ]
    op = await (await http.post("/api/v1/tasks?async_mode=true&skip_invalid_items=true", json=items)).json()
    assert op["status"] == "SUCCESS"
    log = await (await http.get(f"/api/v1/operations/{op['id']}/log")).json()
    assert [item["type"] for item in log] == ["TASK_CREATE", "TASK_VALIDATE", "TASK_CREATE"]
    assert [item["success"] for item in log] == [True, False, True]
    assert [item["input"]["__item_idx"] for item in log] == ["0", "1", "2"]
    assert log[2]["input"]["extra"] == {"k": 1}
    assert log[1]["output"] == {
        "input_values": {"code": "VALUE_REQUIRED", "message": "Value must be present and not equal to null"}
    }
    task_id = log[0]["output"]["task_id"]
    fetched = await (await http.get(f"/api/v1/tasks/{task_id}")).json()
    assert fetched["id"] == task_id


async def test_operation_fails_and_nothing_created_when_invalid_item_without_skip(
    http: aiohttp.ClientSession, state: EmulatorState
) -> None:
    op = await (await http.post("/api/v1/tasks?async_mode=true", json=[task(), task(overlap=40000)])).json()
    assert op["status"] == "FAIL"
    log = await (await http.get(f"/api/v1/operations/{op['id']}/log")).json()
    assert log == [
        {
            "type": "TASK_VALIDATE",
            "success": False,
            "input": task(overlap=40000),
            "output": {
                "overlap": {"code": "VALUE_GREATER_THAN_MAX", "message": "Value must be at most 30000"}
            },
        }
    ]
    assert state.pool_task_ids["1"] == []


async def test_pool_opened_at_end_when_open_pool(
    http: aiohttp.ClientSession, state: EmulatorState, clock: ManualClock
) -> None:
    state.operation_duration_s = 2.0
    op = await (await http.post("/api/v1/tasks?async_mode=true&open_pool=true", json=task())).json()
    assert state.pools["1"]["status"] == "CLOSED"
    await clock.advance(2.0)
    assert (await (await http.get(f"/api/v1/operations/{op['id']}")).json())["status"] == "SUCCESS"
    assert state.pools["1"]["status"] == "OPEN"


async def test_empty_pool_logged_when_open_pool_and_nothing_created(http: aiohttp.ClientSession) -> None:
    url = "/api/v1/tasks?async_mode=true&open_pool=true&skip_invalid_items=true"
    op = await (await http.post(url, json=[task(input_values=None)])).json()
    log = await (await http.get(f"/api/v1/operations/{op['id']}/log")).json()
    assert [item["type"] for item in log] == ["TASK_VALIDATE", "POOL_OPEN"]
    assert log[1]["success"] is False
    assert log[1]["input"] == {"pool_id": "1"}
    assert log[1]["output"]["code"] == "EMPTY_POOL"


async def test_404_does_not_exist_when_operation_unknown_or_malformed(http: aiohttp.ClientSession) -> None:
    for op_id in (str(uuid.uuid4()), "garbage"):
        for suffix in ("", "/log"):
            resp = await http.get(f"/api/v1/operations/{op_id}{suffix}")
            assert resp.status == 404
            assert (await resp.json())["code"] == "DOES_NOT_EXIST"


async def test_request_log_counts_one_post_per_operation_id_when_polled(
    http: aiohttp.ClientSession, state: EmulatorState
) -> None:
    op_id = str(uuid.uuid4())
    await http.post(f"/api/v1/tasks?async_mode=true&operation_id={op_id}", json=task())
    await http.get(f"/api/v1/operations/{op_id}")
    posts = [r for r in state.requests if r.method == "POST" and r.operation_id == op_id]
    assert len(posts) == 1
    assert posts[0].path == "/api/v1/tasks"
    assert posts[0].query["async_mode"] == "true"
    assert posts[0].auth_scheme == "OAuth"
    assert posts[0].body_size > 0
    assert "test-token" not in repr(state.requests)
