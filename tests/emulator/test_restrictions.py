"""User restrictions bar performers until lifted or expired, on the emulator's clock."""

from __future__ import annotations

from typing import Any

import aiohttp

from gateway.emulator.wire import iso
from tests.support.clock import ManualClock

HOUR = 3600.0


async def _json(resp: aiohttp.ClientResponse, status: int = 200) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def _count(http: aiohttp.ClientSession) -> int:
    return len((await _json(await http.get("/api/v1/assignments?pool_id=4&limit=100")))["items"])


async def test_restriction_bars_until_it_expires(http: aiohttp.ClientSession, clock: ManualClock) -> None:
    await _json(await http.post("/_emulator/crowd/pools/4", json={"performers": 1}))
    body = {
        "user_id": "performer-01",
        "scope": "POOL",
        "pool_id": "4",
        "will_expire": iso(clock.now() + 2 * HOUR),
    }
    restriction = await _json(await http.put("/api/v1/user-restrictions", json=body), 201)
    items = [{"pool_id": "4", "input_values": {"image": "a"}, "overlap": 1}]
    await _json(await http.post("/api/v1/tasks?open_pool=true", json=items), 201)
    await clock.advance(HOUR)
    assert await _count(http) == 0
    listed = await _json(await http.get("/api/v1/user-restrictions?user_id=performer-01"))
    assert [r["id"] for r in listed["items"]] == [restriction["id"]]
    await clock.advance(2 * HOUR)
    assert await _count(http) == 1
    assert (await _json(await http.get("/api/v1/user-restrictions")))["items"] == []


async def test_restriction_lifted_by_delete_and_scoped_by_project(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    await _json(await http.post("/_emulator/crowd/pools/4", json={"performers": 1}))
    body = {"user_id": "performer-01", "scope": "PROJECT", "project_id": "1"}
    restriction = await _json(await http.put("/api/v1/user-restrictions", json=body), 201)
    items = [{"pool_id": "4", "input_values": {"image": "a"}, "overlap": 1}]
    await _json(await http.post("/api/v1/tasks?open_pool=true", json=items), 201)
    await clock.advance(HOUR)
    assert await _count(http) == 0
    url = f"/api/v1/user-restrictions/{restriction['id']}"
    assert (await _json(await http.get(url)))["scope"] == "PROJECT"
    assert (await http.delete(url)).status == 204
    assert (await http.get(url)).status == 404
    await clock.advance(HOUR)
    assert await _count(http) == 1
    bad = {"user_id": "x", "scope": "PROJECT", "will_expire": "soon"}
    assert set((await _json(await http.put("/api/v1/user-restrictions", json=bad), 400))["payload"]) == {
        "project_id",
        "will_expire",
    }
