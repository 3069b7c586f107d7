"""`GET /api/v1/tasks` and `GET /api/v1/tasks/{id}`."""

from __future__ import annotations

import aiohttp

from gateway.emulator import EmulatorState


async def _create(http: aiohttp.ClientSession, n: int) -> list[str]:
    items = [{"pool_id": "1", "input_values": {"n": i}, "overlap": 1} for i in range(n)]
    body = await (await http.post("/api/v1/tasks", json=items)).json()
    return [body["items"][str(i)]["id"] for i in range(n)]


async def test_ids_sort_in_creation_order_when_created_in_batches(http: aiohttp.ClientSession) -> None:
    ids = (await _create(http, 3)) + (await _create(http, 3))
    assert ids == sorted(ids)
    assert all(len(i) == 36 and i[10:12] == "--" for i in ids)


async def test_range_filters_compare_ids_as_strings(http: aiohttp.ClientSession) -> None:
    ids = await _create(http, 6)
    query = f"pool_id=1&id_gte={ids[1]}&id_lte={ids[4]}&sort=id"
    listed = await (await http.get(f"/api/v1/tasks?{query}")).json()
    assert [t["id"] for t in listed["items"]] == ids[1:5]
    assert listed["has_more"] is False
    listed = await (await http.get(f"/api/v1/tasks?pool_id=1&id_gt={ids[1]}&id_lt={ids[4]}")).json()
    assert [t["id"] for t in listed["items"]] == ids[2:4]


async def test_pages_with_has_more_when_limit_smaller_than_result(http: aiohttp.ClientSession) -> None:
    ids = await _create(http, 5)
    seen: list[str] = []
    query = "pool_id=1&sort=id&limit=2"
    while True:
        page = await (await http.get(f"/api/v1/tasks?{query}")).json()
        seen += [t["id"] for t in page["items"]]
        if not page["has_more"]:
            break
        query = f"pool_id=1&sort=id&limit=2&id_gt={seen[-1]}"
    assert seen == ids


async def test_descending_when_sort_minus_id(http: aiohttp.ClientSession) -> None:
    ids = await _create(http, 3)
    page = await (await http.get("/api/v1/tasks?pool_id=1&sort=-id&limit=2")).json()
    assert [t["id"] for t in page["items"]] == [ids[2], ids[1]]
    assert page["has_more"] is True


async def test_default_limit_is_50_when_no_limit(http: aiohttp.ClientSession) -> None:
    await _create(http, 60)
    page = await (await http.get("/api/v1/tasks?pool_id=1")).json()
    assert len(page["items"]) == 50
    assert page["has_more"] is True


async def test_400_when_limit_out_of_range(http: aiohttp.ClientSession) -> None:
    assert (await http.get("/api/v1/tasks?limit=100001")).status == 400
    assert (await http.get("/api/v1/tasks?limit=0")).status == 400


async def test_all_pools_listed_when_no_pool_id(http: aiohttp.ClientSession, state: EmulatorState) -> None:
    await _create(http, 2)
    page = await (await http.get("/api/v1/tasks")).json()
    assert len(page["items"]) == 2 + len(state.pool_task_ids["2"])


async def test_404_when_task_unknown(http: aiohttp.ClientSession) -> None:
    resp = await http.get("/api/v1/tasks/0000000001--000000000000000000000000")
    assert resp.status == 404
    assert (await resp.json())["code"] == "DOES_NOT_EXIST"
