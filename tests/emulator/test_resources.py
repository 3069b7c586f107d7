"""Projects, pool creation/cloning/listing, the operations list, task PATCH and task suites over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp

from gateway.emulator import EmulatorState
from tests.support.clock import ManualClock

PROJECT = {
    "public_name": "Cats",
    "public_description": "Is it a cat?",
    "task_spec": {
        "input_spec": {"image": {"type": "url", "required": True}},
        "output_spec": {"label": {"type": "string", "required": True, "allowed_values": ["cat", "dog"]}},
        "view_spec": {"type": "tb", "config": "{}"},
    },
}


def pool_body(project_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "project_id": project_id,
        "private_name": "p",
        "may_contain_adult_content": False,
        "will_expire": "2030-01-01T00:00:00",
        "reward_per_assignment": 0.01,
        "assignment_max_duration_seconds": 600,
        "defaults": {"default_overlap_for_new_task_suites": 2, "default_overlap_for_new_tasks": 1},
        **extra,
    }


async def _json(resp: aiohttp.ClientResponse, status: int) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def test_project_created_fetched_updated_and_listed(http: aiohttp.ClientSession) -> None:
    project = await _json(
        await http.post("/api/v1/projects", json={**PROJECT, "id": "x", "status": "X"}), 201
    )
    assert (project["id"], project["status"]) == ("2", "ACTIVE")
    assert project["assignments_issuing_type"] == "AUTOMATED"
    assert await _json(await http.get("/api/v1/projects/2"), 200) == project
    updated = await _json(await http.put("/api/v1/projects/2", json={**PROJECT, "public_name": "Dogs"}), 200)
    assert (updated["public_name"], updated["created"]) == ("Dogs", project["created"])
    listed = await _json(await http.get("/api/v1/projects?sort=-id&status=ACTIVE"), 200)
    assert [p["id"] for p in listed["items"]] == ["2", "1"]
    missing = await _json(await http.post("/api/v1/projects", json={"public_name": "x"}), 400)
    assert set(missing["payload"]) == {"public_description", "task_spec"}
    assert (await http.get("/api/v1/projects/99")).status == 404


async def test_pool_created_from_pool_json_and_cloned(
    http: aiohttp.ClientSession, state: EmulatorState
) -> None:
    qc = {"configs": [{"collector_config": {"type": "USERS_ASSESSMENT"}, "rules": []}]}
    body = pool_body("1", quality_control=qc, status="OPEN", id="77")
    pool = await _json(await http.post("/api/v1/pools", json=body), 201)
    assert (pool["id"], pool["status"], pool["type"]) == ("5", "CLOSED", "REGULAR")
    assert pool["quality_control"]["configs"][0]["collector_config"]["uuid"]
    op = await _json(await http.post("/api/v1/pools/5/clone"), 202)
    assert op["type"] == "POOL.CLONE"
    op = await _json(await http.get(f"/api/v1/operations/{op['id']}"), 200)
    clone = await _json(await http.get(f"/api/v1/pools/{op['details']['pool_id']}"), 200)
    assert clone["id"] == "6" and clone["private_name"] == "p" and clone["status"] == "CLOSED"
    new_uuid = clone["quality_control"]["configs"][0]["collector_config"]["uuid"]
    assert new_uuid != pool["quality_control"]["configs"][0]["collector_config"]["uuid"]
    assert state.pool_task_ids["6"] == []


async def test_pool_creation_refused_naming_missing_fields_and_unknown_project(
    http: aiohttp.ClientSession,
) -> None:
    body = await _json(await http.post("/api/v1/pools", json={"project_id": "42"}), 400)
    assert body["payload"]["project_id"]["code"] == "ENTITY_DOES_NOT_EXIST"
    assert "reward_per_assignment" in body["payload"]


async def test_pools_listed_with_filters_and_sort(http: aiohttp.ClientSession) -> None:
    await _json(await http.post("/api/v1/projects", json=PROJECT), 201)
    await _json(await http.post("/api/v1/pools", json=pool_body("2")), 201)
    by_project = await _json(await http.get("/api/v1/pools?project_id=2"), 200)
    assert [p["id"] for p in by_project["items"]] == ["5"]
    open_ = await _json(await http.get("/api/v1/pools?status=OPEN"), 200)
    assert [p["id"] for p in open_["items"]] == ["2"]
    page = await _json(await http.get("/api/v1/pools?sort=-id&limit=2"), 200)
    assert [p["id"] for p in page["items"]] == ["5", "4"] and page["has_more"] is True
    started = await _json(await http.get("/api/v1/pools?last_started_gte=2000-01-01T00:00:00"), 200)
    assert [p["id"] for p in started["items"]] == ["2"]
    assert (await http.get("/api/v1/pools?owner_id=1")).status == 400


async def test_operations_listed_with_filters(http: aiohttp.ClientSession, clock: ManualClock) -> None:
    task = {"pool_id": "1", "input_values": {"a": 1}, "overlap": 1}
    first = await _json(
        await http.post(f"/api/v1/tasks?async_mode=true&operation_id={uuid.uuid4()}", json=[task]), 202
    )
    await clock.advance(60)
    await _json(await http.post("/api/v1/pools/1/open"), 202)
    listed = await _json(await http.get("/api/v1/operations?sort=-submitted"), 200)
    assert [o["type"] for o in listed["items"]] == ["POOL.OPEN", "TASK.BATCH_CREATE"]
    only = await _json(await http.get("/api/v1/operations?type=TASK.BATCH_CREATE&status=SUCCESS"), 200)
    assert [o["id"] for o in only["items"]] == [first["id"]]
    assert (await http.get("/api/v1/operations?limit=501")).status == 400


async def test_task_overlap_patched_and_set_overlap_or_min(
    http: aiohttp.ClientSession, state: EmulatorState
) -> None:
    task = await _json(
        await http.post("/api/v1/tasks", json={"pool_id": "1", "input_values": {"a": 1}, "overlap": 1}), 201
    )
    patched = await _json(await http.patch(f"/api/v1/tasks/{task['id']}", json={"overlap": 3}), 200)
    assert (patched["overlap"], patched["remaining_overlap"]) == (3, 3)
    state.issued[task["id"]] = 2
    lowered = await _json(
        await http.patch(f"/api/v1/tasks/{task['id']}/set-overlap-or-min", json={"overlap": 1}), 200
    )
    assert (lowered["overlap"], lowered["remaining_overlap"]) == (2, 0)
    bad = await _json(await http.patch(f"/api/v1/tasks/{task['id']}", json={"overlap": 0}), 400)
    assert bad["payload"]["overlap"]["code"] == "VALUE_LESS_THAN_MIN"
    assert (await http.patch("/api/v1/tasks/nope", json={"overlap": 2})).status == 404


async def test_task_suites_sync_async_idempotent_and_listed(http: aiohttp.ClientSession) -> None:
    suite = {"pool_id": "1", "tasks": [{"input_values": {"a": 1}}, {"input_values": {"a": 2}}]}
    created = await _json(await http.post("/api/v1/task-suites?allow_defaults=true", json=suite), 201)
    assert created["overlap"] == 3 and len({t["id"] for t in created["tasks"]}) == 2
    op_id = str(uuid.uuid4())
    url = f"/api/v1/task-suites?async_mode=true&operation_id={op_id}"
    op = await _json(await http.post(url, json=[{**suite, "overlap": 1}, {"pool_id": "1", "tasks": []}]), 202)
    assert op["type"] == "TASK_SUITE.BATCH_CREATE" and op["status"] == "FAIL"
    again = await _json(await http.post(url, json=[suite]), 409)
    assert again["code"] == "OPERATION_ALREADY_EXISTS"
    log = await _json(await http.get(f"/api/v1/operations/{op_id}/log"), 200)
    assert [item["type"] for item in log] == ["TASK_SUITE_VALIDATE"]
    assert "tasks" in log[0]["output"]
    url = f"/api/v1/task-suites?async_mode=true&operation_id={uuid.uuid4()}&skip_invalid_items=true"
    op = await _json(await http.post(url, json=[{**suite, "overlap": 1}]), 202)
    log = await _json(await http.get(f"/api/v1/operations/{op['id']}/log"), 200)
    second = log[0]["output"]["task_suite_id"]
    listed = await _json(await http.get("/api/v1/task-suites?pool_id=1&sort=-created,-id"), 200)
    assert [s["id"] for s in listed["items"]] == [second, created["id"]]
    by_task = await _json(await http.get(f"/api/v1/task-suites?task_id={created['tasks'][1]['id']}"), 200)
    assert [s["id"] for s in by_task["items"]] == [created["id"]]
    patched = await _json(await http.patch(f"/api/v1/task-suites/{second}", json={"overlap": 4}), 200)
    assert patched["remaining_overlap"] == 4
    assert (await _json(await http.get(f"/api/v1/task-suites/{second}"), 200))["overlap"] == 4


async def test_patch_refused_whole_when_a_field_cannot_be_patched(http: aiohttp.ClientSession) -> None:
    body = {"pool_id": "1", "tasks": [{"input_values": {"a": 1}}], "overlap": 1}
    suite = await _json(await http.post("/api/v1/task-suites", json=body), 201)
    url = f"/api/v1/task-suites/{suite['id']}"
    bad = await _json(
        await http.patch(url, json={"issuing_order_override": 5, "overlap": 2, "pool_id": "4"}), 400
    )
    assert set(bad["payload"]) == {"pool_id"}
    unchanged = await _json(await http.get(url), 200)
    assert (unchanged["overlap"], unchanged.get("issuing_order_override")) == (1, None)
    assert (await http.patch(url, json=[{"overlap": 2}])).status == 400
    task = await _json(
        await http.post("/api/v1/tasks", json={"pool_id": "1", "input_values": {"a": 1}, "overlap": 1}), 201
    )
    assert (await http.patch(f"/api/v1/tasks/{task['id']}", json=["overlap"])).status == 400
    assert (await http.patch(f"/api/v1/tasks/{task['id']}", json={"infinite_overlap": False})).status == 400
