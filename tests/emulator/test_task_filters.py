"""`GET /api/v1/tasks` honours every filter and sort of toloka-kit's TaskSearchRequest, and refuses the rest."""

from __future__ import annotations

import aiohttp
import pytest

from tests.support.clock import ManualClock


async def _create(http: aiohttp.ClientSession, overlaps: list[int], pool_id: str = "1") -> list[str]:
    items = [{"pool_id": pool_id, "input_values": {"n": i}, "overlap": o} for i, o in enumerate(overlaps)]
    body = await (await http.post("/api/v1/tasks", json=items)).json()
    return [body["items"][str(i)]["id"] for i in range(len(overlaps))]


async def _ids(http: aiohttp.ClientSession, query: str) -> list[str]:
    resp = await http.get(f"/api/v1/tasks?{query}")
    assert resp.status == 200, await resp.text()
    return [t["id"] for t in (await resp.json())["items"]]


async def test_created_bounds_select_exactly_the_tasks_created_in_the_window(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    early = await _create(http, [1, 1])
    await clock.advance(3600)
    late = await _create(http, [1])
    boundary = (await (await http.get(f"/api/v1/tasks/{late[0]}")).json())["created"]
    assert await _ids(http, f"pool_id=1&created_gte={boundary}") == late
    assert await _ids(http, f"pool_id=1&created_gt={boundary}") == []
    assert await _ids(http, f"pool_id=1&created_lt={boundary}") == early
    assert await _ids(http, f"pool_id=1&created_lte={boundary}") == early + late
    assert await _ids(http, "pool_id=1&created_gt=2099-01-01T00:00:00") == []
    assert await _ids(http, "pool_id=1&created_gt=2000-01-01T00:00:00%2B00:00") == early + late


async def test_overlap_filters_select_exactly_the_matching_tasks(http: aiohttp.ClientSession) -> None:
    ids = await _create(http, [1, 2, 3, 5])
    assert await _ids(http, "pool_id=1&overlap=2") == [ids[1]]
    assert await _ids(http, "pool_id=1&overlap_gte=3") == ids[2:]
    assert await _ids(http, "pool_id=1&overlap_gt=1&overlap_lt=5") == ids[1:3]
    assert await _ids(http, "pool_id=1&overlap_lte=1") == ids[:1]


async def test_sort_by_created_then_id_descending_as_in_toloka_kit_docstring(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    first = await _create(http, [1, 1])
    await clock.advance(10)
    second = await _create(http, [1, 1])
    assert await _ids(http, "pool_id=1&sort=-created,-id") == second[::-1] + first[::-1]
    assert await _ids(http, "pool_id=1&sort=created,-id") == first[::-1] + second[::-1]
    assert await _ids(http, "sort=-created,id&limit=3&pool_id=1") == [second[0], second[1], first[0]]


async def test_without_pool_filter_lists_every_pool_and_pages(http: aiohttp.ClientSession) -> None:
    one = await _create(http, [1])
    four = await _create(http, [1], pool_id="4")
    seeded = await _ids(http, "pool_id=2")
    everything = await _ids(http, "sort=id&limit=100")
    assert sorted(everything) == sorted(one + four + seeded)
    page = await (await http.get("/api/v1/tasks?sort=id&limit=2&overlap_gte=1")).json()
    assert len(page["items"]) == 2 and page["has_more"] is True


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("pool_id=1&status=ACTIVE", "status"),
        ("pool_id=1&input_values=x", "input_values"),
        ("pool_id=1&created_between=x", "created_between"),
        ("pool_id=1&sort=-overlap", "overlap"),
        ("pool_id=1&sort=id,priority", "priority"),
    ],
)
async def test_400_naming_a_filter_or_sort_the_emulator_cannot_honour(
    http: aiohttp.ClientSession, query: str, named: str
) -> None:
    resp = await http.get(f"/api/v1/tasks?{query}")
    assert resp.status == 400
    body = await resp.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert named in body["message"]


async def test_400_when_a_bound_is_malformed(http: aiohttp.ClientSession) -> None:
    for query in ("created_gt=yesterday", "overlap_gte=many"):
        resp = await http.get(f"/api/v1/tasks?pool_id=1&{query}")
        assert resp.status == 400
        assert query.split("=")[0] in (await resp.json())["payload"]
