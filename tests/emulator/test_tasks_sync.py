"""Synchronous `POST /api/v1/tasks`."""

from __future__ import annotations

import io

import aiohttp
import orjson

from gateway.emulator import EmulatorState

JSON_CT = {"Content-Type": "application/json"}


def task(pool_id: str = "1", **extra: object) -> dict[str, object]:
    return {"pool_id": pool_id, "input_values": {"image": "http://x/1.png"}, "overlap": 2, **extra}


async def test_object_body_returns_201_task_view_when_sync(http: aiohttp.ClientSession) -> None:
    resp = await http.post("/api/v1/tasks", json=task(remaining_overlap=9, unknown_key=1))
    assert resp.status == 201
    body = await resp.json()
    assert body["pool_id"] == "1"
    assert body["input_values"] == {"image": "http://x/1.png"}
    assert body["overlap"] == 2
    assert body["remaining_overlap"] == 2
    assert body["id"].startswith("0000000001--")
    assert "T" in body["created"] and not body["created"].endswith("Z")
    assert "unknown_key" not in body


async def test_array_body_returns_items_keyed_by_index_when_sync(http: aiohttp.ClientSession) -> None:
    resp = await http.post("/api/v1/tasks", json=[task(), task()])
    assert resp.status == 201
    body = await resp.json()
    assert set(body["items"]) == {"0", "1"}
    assert body["items"]["0"]["id"] < body["items"]["1"]["id"]


async def test_invalid_items_reported_and_valid_created_when_skip_invalid_items(
    http: aiohttp.ClientSession, state: EmulatorState
) -> None:
    items = [task(), task(input_values={}), task(pool_id="999")]
    resp = await http.post("/api/v1/tasks?skip_invalid_items=true", json=items)
    assert resp.status == 201
    body = await resp.json()
    assert list(body["items"]) == ["0"]
    assert body["validation_errors"]["1"]["input_values"]["code"] == "VALUE_REQUIRED"
    assert body["validation_errors"]["2"]["pool_id"]["code"] == "ENTITY_DOES_NOT_EXIST"
    assert len(state.pool_task_ids["1"]) == 1


async def test_nothing_created_and_400_when_invalid_item_without_skip(
    http: aiohttp.ClientSession, state: EmulatorState
) -> None:
    resp = await http.post("/api/v1/tasks", json=[task(), task(overlap=0)])
    assert resp.status == 400
    body = await resp.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert body["request_id"]
    assert body["payload"] == {
        "1": {"overlap": {"code": "VALUE_LESS_THAN_MIN", "message": "Value must be at least 1"}}
    }
    assert state.pool_task_ids["1"] == []


async def test_413_entity_too_large_when_sync_batch_exceeds_5000(http: aiohttp.ClientSession) -> None:
    resp = await http.post("/api/v1/tasks", json=[task()] * 5001)
    assert resp.status == 413
    assert (await resp.json())["code"] == "ENTITY_TOO_LARGE"


async def test_5000_tasks_accepted_when_sync_batch_at_cap(http: aiohttp.ClientSession) -> None:
    resp = await http.post("/api/v1/tasks", json=[task()] * 5000)
    assert resp.status == 201
    assert len((await resp.json())["items"]) == 5000


async def test_400_when_input_values_exceed_1_mib(http: aiohttp.ClientSession) -> None:
    big = "x" * (300 * 1024)
    items = [task(input_values={"text": big}) for _ in range(4)]
    body_bytes = io.BytesIO(orjson.dumps(items))  # aiohttp warns about raw bodies over 1 MiB
    resp = await http.post("/api/v1/tasks?async_mode=true", data=body_bytes, headers=JSON_CT)
    assert resp.status == 400
    body = await resp.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert body["payload"]["input_values"]["code"] == "VALUE_GREATER_THAN_MAX"


async def test_infinite_overlap_accepted_when_overlap_null(http: aiohttp.ClientSession) -> None:
    resp = await http.post("/api/v1/tasks", json=task(pool_id="4", overlap=None, infinite_overlap=True))
    assert resp.status == 201
    body = await resp.json()
    assert body["infinite_overlap"] is True
    assert body["overlap"] is None


async def test_overlap_required_when_pool_has_no_default(http: aiohttp.ClientSession) -> None:
    item = {"pool_id": "4", "input_values": {"a": 1}}
    resp = await http.post("/api/v1/tasks?allow_defaults=true", json=item)
    assert resp.status == 400
    assert (await resp.json())["payload"]["overlap"]["code"] == "VALUE_REQUIRED"


async def test_pool_default_overlap_used_when_allow_defaults(http: aiohttp.ClientSession) -> None:
    item = {"pool_id": "1", "input_values": {"a": 1}}
    assert (await http.post("/api/v1/tasks", json=item)).status == 400
    resp = await http.post("/api/v1/tasks?allow_defaults=true", json=item)
    assert resp.status == 201
    assert (await resp.json())["overlap"] == 3


async def test_rejected_when_pool_archived(http: aiohttp.ClientSession) -> None:
    resp = await http.post("/api/v1/tasks", json=task(pool_id="3"))
    assert resp.status == 400
    assert (await resp.json())["payload"]["pool_id"]["code"] == "VALUE_NOT_ALLOWED"


async def test_415_when_content_type_not_json(http: aiohttp.ClientSession) -> None:
    resp = await http.post("/api/v1/tasks", data=b'{"pool_id": "1"}', headers={"Content-Type": "text/plain"})
    assert resp.status == 415
    assert (await resp.json())["code"] == "UNSUPPORTED_MEDIA_TYPE"


async def test_pool_opened_when_sync_open_pool(http: aiohttp.ClientSession, state: EmulatorState) -> None:
    resp = await http.post("/api/v1/tasks?open_pool=true", json=task())
    assert resp.status == 201
    assert state.pools["1"]["status"] == "OPEN"
