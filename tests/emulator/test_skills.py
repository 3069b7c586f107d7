"""Skills drive the crowd through pool filters, and losing one is a SKILL_CHANGE revocation."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.support.clock import ManualClock

HOUR = 3600.0
FILTER = {"and": [{"or": [{"category": "skill", "key": "2626", "operator": "GTE", "value": 80}]}]}
RULE = {
    "collector_config": {"type": "USERS_ASSESSMENT"},
    "rules": [
        {
            "conditions": [
                {"key": "pool_access_revoked_reason", "operator": "EQ", "value": "SKILL_CHANGE"},
                {"key": "skill_id", "operator": "EQ", "value": "2626"},
            ],
            "action": {"type": "CHANGE_OVERLAP", "parameters": {"delta": 1, "open_pool": True}},
        }
    ],
}


async def _json(resp: aiohttp.ClientResponse, status: int = 200) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def _users(http: aiohttp.ClientSession, query: str) -> list[str]:
    page = await _json(await http.get(f"/api/v1/assignments?{query}&limit=1000&sort=id"))
    return [a["user_id"] for a in page["items"]]


async def _skill(http: aiohttp.ClientSession, user: str, value: float) -> dict[str, Any]:
    body = {"skill_id": "2626", "user_id": user, "value": value}
    result: dict[str, Any] = await _json(await http.put("/api/v1/user-skills", json=body), 201)
    return result


async def test_only_performers_passing_the_filter_work_and_losing_the_skill_re_executes(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    pool = await _json(await http.get("/api/v1/pools/4"))
    await _json(
        await http.put(
            "/api/v1/pools/4", json={**pool, "filter": FILTER, "quality_control": {"configs": [RULE]}}
        )
    )
    await _json(await http.post("/_emulator/crowd/pools/4", json={"performers": 4}))
    items = [{"pool_id": "4", "input_values": {"image": f"u{i}"}, "overlap": 1} for i in range(8)]
    await _json(await http.post("/api/v1/tasks?open_pool=true", json=items), 201)
    await clock.advance(HOUR)
    assert await _users(http, "pool_id=4") == []
    for user in ("performer-01", "performer-02", "performer-03"):
        await _skill(http, user, 90)
    await _skill(http, "performer-04", 79.5)
    await clock.advance(HOUR)
    users = await _users(http, "pool_id=4")
    assert len(users) == 8 and set(users) == {"performer-01", "performer-02", "performer-03"}
    lost = users.count("performer-01")
    skill = await _skill(http, "performer-01", 50)
    assert (skill["value"], skill["exact_value"]) == (50, 50.0)
    tasks = (await _json(await http.get("/api/v1/tasks?pool_id=4&overlap=2")))["items"]
    assert len(tasks) == lost
    await clock.advance(HOUR)
    after = await _users(http, "pool_id=4")
    assert len(after) == 8 + lost and after.count("performer-01") == lost
    listed = await _json(await http.get("/api/v1/user-skills?skill_id=2626&sort=-id"))
    assert [s["user_id"] for s in listed["items"]] == [
        "performer-04",
        "performer-03",
        "performer-02",
        "performer-01",
    ]
    assert (await _json(await http.get(f"/api/v1/user-skills/{skill['id']}")))["exact_value"] == 50.0
    assert (await http.delete(f"/api/v1/user-skills/{skill['id']}")).status == 204
    assert (await http.get(f"/api/v1/user-skills/{skill['id']}")).status == 404


async def test_deleting_a_skill_that_no_rule_names_revokes_without_re_execution(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    pool = await _json(await http.get("/api/v1/pools/4"))
    await _json(await http.put("/api/v1/pools/4", json={**pool, "filter": FILTER}))
    await _json(await http.post("/_emulator/crowd/pools/4", json={"performers": 1, "latency_s": 400}))
    skill = await _skill(http, "performer-01", 100)
    items = [{"pool_id": "4", "input_values": {"image": f"u{i}"}, "overlap": 1} for i in range(2)]
    await _json(await http.post("/api/v1/tasks?open_pool=true", json=items), 201)
    await clock.advance(60)
    [active] = (await _json(await http.get("/api/v1/assignments?pool_id=4")))["items"]
    assert active["status"] == "ACTIVE"
    assert (await http.delete(f"/api/v1/user-skills/{skill['id']}")).status == 204
    expired = await _json(await http.get(f"/api/v1/assignments/{active['id']}"))
    assert expired["status"] == "EXPIRED"
    await clock.advance(5 * HOUR)
    assert await _users(http, "pool_id=4") == ["performer-01"]
    await _skill(http, "performer-01", 100)
    await clock.advance(10 * HOUR)
    assert await _users(http, "pool_id=4&status=SUBMITTED") == ["performer-01", "performer-01"]


async def test_400_naming_bad_skill_fields(http: aiohttp.ClientSession) -> None:
    bad = await _json(await http.put("/api/v1/user-skills", json={"skill_id": "1", "value": 101}), 400)
    assert set(bad["payload"]) == {"user_id", "value"}
