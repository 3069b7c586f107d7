"""Aggregated solutions by majority vote over the crowd's answers."""

from __future__ import annotations

from collections import Counter
from typing import Any

import aiohttp

from tests.support.clock import ManualClock

HOUR = 3600.0
FIELDS = [{"name": "label"}]


async def _json(resp: aiohttp.ClientResponse, status: int = 200) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def test_pool_aggregation_is_the_majority_of_each_tasks_answers(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    crowd = {"answer_policy": "random", "performers": 5}
    await _json(await http.post("/_emulator/crowd", json={"seed": 3, "pools": {"4": crowd}}))
    items = [{"pool_id": "4", "input_values": {"image": f"u{i}"}, "overlap": 5} for i in range(6)]
    await _json(await http.post("/api/v1/tasks?open_pool=true", json=items), 201)
    await clock.advance(HOUR)
    assignments = (await _json(await http.get("/api/v1/assignments?pool_id=4&sort=id&limit=100")))["items"]
    reject = assignments[0]
    await http.patch(
        f"/api/v1/assignments/{reject['id']}", json={"status": "REJECTED", "public_comment": "x"}
    )
    votes: dict[str, list[str]] = {}
    for a in assignments[1:]:
        votes.setdefault(a["tasks"][0]["id"], []).append(a["solutions"][0]["output_values"]["label"])
    body = {"type": "DAWID_SKENE", "pool_id": "4", "fields": FIELDS}
    op = await _json(await http.post("/api/v1/aggregated-solutions/aggregate-by-pool", json=body), 202)
    assert (op["type"], op["status"], op["parameters"]) == ("SOLUTION.AGGREGATE", "SUCCESS", {"pool_id": "4"})
    results = (await _json(await http.get(f"/api/v1/aggregated-solutions/{op['id']}?sort=task_id")))["items"]
    assert [r["task_id"] for r in results] == sorted(votes)
    for result in results:
        labels = votes[result["task_id"]]
        top = Counter(labels).most_common(1)[0][1]
        assert labels.count(result["output_values"]["label"]) == top
        assert result["confidence"] == top / len(labels)
    first = results[0]["task_id"]
    page = await _json(await http.get(f"/api/v1/aggregated-solutions/{op['id']}?task_id_gt={first}&limit=2"))
    assert [r["task_id"] for r in page["items"]] == sorted(votes)[1:3] and page["has_more"] is True
    one = {**body, "task_id": first}
    assert (
        await _json(await http.post("/api/v1/aggregated-solutions/aggregate-by-task", json=one)) == results[0]
    )


async def test_aggregation_refuses_bad_requests_and_unknown_operations(http: aiohttp.ClientSession) -> None:
    bad = await _json(
        await http.post("/api/v1/aggregated-solutions/aggregate-by-pool", json={"pool_id": "9"}), 400
    )
    assert set(bad["payload"]) == {"pool_id", "type", "fields"}
    assert (await http.get("/api/v1/aggregated-solutions/00000000-0000-0000-0000-000000000000")).status == 404
