"""The simulated crowd on the emulator's clock: assignments, acceptance, re-execution, revocations."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.emulator import EmulatorServer, EmulatorState
from gateway.emulator.crowd_control import load_crowd_config
from gateway.emulator.listing import date_key
from tests.emulator.conftest import AUTH
from tests.support.clock import ManualClock

HOUR = 3600.0
REJECT_RULE = {
    "collector_config": {"type": "ASSIGNMENTS_ASSESSMENT"},
    "rules": [
        {
            "conditions": [{"key": "assessment_event", "operator": "EQ", "value": "REJECT"}],
            "action": {"type": "CHANGE_OVERLAP", "parameters": {"delta": 1, "open_pool": True}},
        }
    ],
}


async def _json(resp: aiohttp.ClientResponse, status: int = 200) -> Any:
    assert resp.status == status, await resp.text()
    return await resp.json()


async def _tasks(http: aiohttp.ClientSession, pool_id: str, overlaps: list[int]) -> list[str]:
    items = [
        {"pool_id": pool_id, "input_values": {"image": f"u{i}"}, "overlap": o} for i, o in enumerate(overlaps)
    ]
    created = await _json(await http.post("/api/v1/tasks?open_pool=true", json=items), 201)
    return [created["items"][str(i)]["id"] for i in range(len(overlaps))]


async def _assignments(http: aiohttp.ClientSession, query: str) -> list[dict[str, Any]]:
    page = await _json(await http.get(f"/api/v1/assignments?{query}&limit=1000"))
    assert page["has_more"] is False
    return list(page["items"])


async def _set_qc(http: aiohttp.ClientSession, pool_id: str, configs: list[dict[str, Any]]) -> None:
    pool = await _json(await http.get(f"/api/v1/pools/{pool_id}"))
    pool["quality_control"] = {"configs": configs}
    await _json(await http.put(f"/api/v1/pools/{pool_id}", json=pool))


async def test_crowd_does_each_task_overlap_times_by_distinct_performers_when_clock_moves(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    ids = await _tasks(http, "4", [2, 3, 1])
    assert await _assignments(http, "pool_id=4") == []
    await clock.advance(HOUR)
    done = await _assignments(http, "pool_id=4")
    per_task = Counter(a["tasks"][0]["id"] for a in done)
    assert per_task == {ids[0]: 2, ids[1]: 3, ids[2]: 1}
    for task_id in ids:
        users = [a["user_id"] for a in done if a["tasks"][0]["id"] == task_id]
        assert len(users) == len(set(users))
    assert {a["status"] for a in done} == {"SUBMITTED"}
    assert all(a["solutions"][0]["output_values"]["label"] in ("cat", "dog") for a in done)
    pool = await _json(await http.get("/api/v1/pools/4"))
    assert (pool["status"], pool["last_close_reason"]) == ("CLOSED", "COMPLETED")
    task = await _json(await http.get(f"/api/v1/tasks/{ids[1]}"))
    assert task["remaining_overlap"] == 0


async def test_assignments_go_active_then_submitted_and_auto_accept_after_the_period(
    http: aiohttp.ClientSession, clock: ManualClock, emu: EmulatorServer
) -> None:
    await _json(await http.post("/_emulator/crowd/pools/4", json={"latency_s": 400, "pickup_delay_s": 1}))
    await _tasks(http, "4", [1])
    await clock.advance(2)
    [active] = await _assignments(http, "pool_id=4")
    assert active["status"] == "ACTIVE" and "submitted" not in active
    await clock.advance(HOUR)
    [submitted] = await _assignments(http, "pool_id=4&status=SUBMITTED")
    assert submitted["id"] == active["id"]
    await clock.advance(7 * 24 * HOUR)
    [accepted] = await _assignments(http, "pool_id=4")
    assert accepted["status"] == "ACCEPTED" and accepted["accepted"] > accepted["submitted"]


async def test_auto_accept_pool_accepts_on_submit(http: aiohttp.ClientSession, clock: ManualClock) -> None:
    await _tasks(http, "1", [2])
    await clock.advance(HOUR)
    assert {a["status"] for a in await _assignments(http, "pool_id=1")} == {"ACCEPTED"}


async def test_requester_accepts_and_rejects_with_comment(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    await _tasks(http, "4", [2])
    await clock.advance(HOUR)
    first, second = await _assignments(http, "pool_id=4&sort=id")
    no_comment = await _json(
        await http.patch(f"/api/v1/assignments/{first['id']}", json={"status": "REJECTED"}), 400
    )
    assert "public_comment" in no_comment["payload"]
    rejected = await _json(
        await http.patch(
            f"/api/v1/assignments/{first['id']}", json={"status": "REJECTED", "public_comment": "no"}
        )
    )
    assert (rejected["status"], rejected["public_comment"]) == ("REJECTED", "no")
    accepted = await _json(
        await http.patch(f"/api/v1/assignments/{second['id']}", json={"status": "ACCEPTED"})
    )
    assert accepted["status"] == "ACCEPTED" and accepted["accepted"]
    again = await _json(
        await http.patch(f"/api/v1/assignments/{second['id']}", json={"status": "ACCEPTED"}), 409
    )
    assert again["code"] == "INAPPROPRIATE_STATUS"
    after = await _json(await http.patch(f"/api/v1/assignments/{first['id']}", json={"status": "ACCEPTED"}))
    assert after["status"] == "ACCEPTED"
    assert (await _json(await http.get(f"/api/v1/assignments/{first['id']}")))["status"] == "ACCEPTED"
    assert (await http.get("/api/v1/assignments/nope")).status == 404


async def test_reject_under_assessment_rule_raises_overlap_reopens_pool_and_task_is_done_again(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    await _set_qc(http, "4", [REJECT_RULE])
    [task_id, other] = await _tasks(http, "4", [1, 1])
    await clock.advance(HOUR)
    assert (await _json(await http.get("/api/v1/pools/4")))["status"] == "CLOSED"
    [first] = await _assignments(http, f"task_id={task_id}")
    await http.patch(
        f"/api/v1/assignments/{first['id']}", json={"status": "REJECTED", "public_comment": "bad"}
    )
    task = await _json(await http.get(f"/api/v1/tasks/{task_id}"))
    assert (task["overlap"], task["remaining_overlap"]) == (2, 1)
    assert (await _json(await http.get("/api/v1/pools/4")))["status"] == "OPEN"
    await clock.advance(HOUR)
    redo = await _assignments(http, f"task_id={task_id}&sort=created")
    assert [a["status"] for a in redo] == ["REJECTED", "SUBMITTED"]
    assert redo[1]["user_id"] != first["user_id"]
    assert len(await _assignments(http, f"task_id={other}")) == 1


async def test_skill_change_revocation_re_executes_that_performers_tasks(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    rule = {
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
    await _set_qc(http, "4", [rule])
    await _json(await http.post("/_emulator/crowd/pools/4", json={"performers": 3}))
    ids = await _tasks(http, "4", [1] * 6)
    await clock.advance(HOUR)
    mine = await _assignments(http, "pool_id=4&user_id=performer-01")
    assert mine
    other_skill = {"pool_id": "4", "user_id": "performer-01", "reason": "SKILL_CHANGE", "skill_id": "1"}
    assert await _json(await http.post("/_emulator/crowd/revoke", json=other_skill)) == {"reexecuted": 0}
    revoke = {**other_skill, "skill_id": "2626", "user_id": "performer-02"}
    theirs = await _assignments(http, "pool_id=4&user_id=performer-02")
    assert await _json(await http.post("/_emulator/crowd/revoke", json=revoke)) == {"reexecuted": len(theirs)}
    await clock.advance(HOUR)
    for a in theirs:
        again = await _assignments(http, f"task_id={a['tasks'][0]['id']}&sort=created")
        assert len(again) == 2
        assert again[0]["user_id"] == "performer-02" and again[1]["user_id"] != "performer-02"
    assert len(await _assignments(http, "pool_id=4")) == len(ids) + len(theirs)
    assert len(await _assignments(http, "pool_id=4&user_id=performer-02")) == len(theirs)


async def test_user_restriction_is_a_restriction_revocation_for_the_seeded_rule(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    await clock.advance(HOUR)
    done = {a["tasks"][0]["id"] for a in await _assignments(http, "pool_id=2&user_id=performer-01")}
    assert done
    body = {"user_id": "performer-01", "scope": "POOL", "pool_id": "2", "private_comment": "spam"}
    await _json(await http.put("/api/v1/user-restrictions", json=body), 201)
    tasks = (await _json(await http.get("/api/v1/tasks?pool_id=2")))["items"]
    assert {t["id"]: t["overlap"] for t in tasks} == {t["id"]: 4 if t["id"] in done else 3 for t in tasks}
    await clock.advance(HOUR)
    assert len(await _assignments(http, "pool_id=2")) == 9 + len(done)
    assert len(await _assignments(http, "pool_id=2&user_id=performer-01")) == len(done)
    assert (await http.put("/api/v1/user-restrictions", json={"scope": "POOL"})).status == 400


async def test_assignment_filters_and_sorts_return_exactly_the_expected_sets(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    await _tasks(http, "4", [3, 3])
    await clock.advance(HOUR)
    everything = await _assignments(http, "pool_id=4")
    target = everything[2]
    await http.patch(
        f"/api/v1/assignments/{target['id']}", json={"status": "REJECTED", "public_comment": "x"}
    )
    rejected = await _assignments(http, "status=REJECTED")
    assert [a["id"] for a in rejected] == [target["id"]]
    both = await _assignments(http, "pool_id=4&status=SUBMITTED,REJECTED")
    assert len(both) == 6
    by_suite = await _assignments(http, f"task_suite_id={target['task_suite_id']}")
    assert {a["tasks"][0]["id"] for a in by_suite} == {target["tasks"][0]["id"]}
    newest = await _assignments(http, "pool_id=4&sort=-submitted,-id")
    keys = [(a["submitted"], a["id"]) for a in newest]
    assert keys == sorted(keys, reverse=True)
    window = await _assignments(http, f"pool_id=4&submitted_gt={newest[3]['submitted']}")
    assert {a["id"] for a in window} == {a["id"] for a in newest if a["submitted"] > newest[3]["submitted"]}
    assert (await http.get("/api/v1/assignments?reward_gt=1")).status == 400


async def _run(seed: int, clock: ManualClock) -> list[tuple[str, str, Any]]:
    state = EmulatorState(clock=clock.now, operation_duration_s=0.0, pool_operation_duration_s=0.0)
    async with EmulatorServer(state) as emu, aiohttp.ClientSession(emu.url, headers=AUTH) as http:
        await _json(
            await http.post("/_emulator/crowd", json={"seed": seed, "defaults": {"answer_policy": "random"}})
        )
        await _tasks(http, "4", [2] * 10)
        await clock.advance(HOUR)
        done = await _assignments(http, "pool_id=4&sort=id")
    return [(a["user_id"], a["tasks"][0]["input_values"]["image"], a["solutions"]) for a in done]


async def test_same_seed_gives_the_same_assignments() -> None:
    first = await _run(7, ManualClock(1_700_000_000.0))
    assert first == await _run(7, ManualClock(1_700_000_000.0))
    assert first != await _run(8, ManualClock(1_700_000_000.0))


@pytest.mark.parametrize(
    "body",
    [
        {"performers": -1},
        {"answer_policy": "guess"},
        {"error_rate": 2},
        {"nonsense": 1},
        {"answer_policy": "function"},
    ],
)
async def test_400_naming_a_bad_crowd_setting(emu: EmulatorServer, body: dict[str, Any]) -> None:
    async with aiohttp.ClientSession(emu.url) as s:
        resp = await s.post("/_emulator/crowd/pools/4", json=body)
        assert resp.status == 400
        assert next(iter(body)) in (await resp.json())["error"]


async def test_crowd_knobs_from_policy_error_rate_and_switch(
    http: aiohttp.ClientSession, clock: ManualClock, state: EmulatorState
) -> None:
    await _json(
        await http.post(
            "/_emulator/crowd/pools/4",
            json={"answer_policy": "from_input", "answer_fields": {"label": "image"}},
        )
    )
    await _tasks(http, "4", [1])
    await clock.advance(HOUR)
    [copied] = await _assignments(http, "pool_id=4")
    assert copied["solutions"] == [{"output_values": {"label": "u0"}}]
    await _json(await http.post("/_emulator/crowd", json={"enabled": False}))
    await _tasks(http, "1", [1])
    await clock.advance(HOUR)
    assert await _assignments(http, "pool_id=1") == []
    view = await _json(await http.get("/_emulator/crowd"))
    assert view["enabled"] is False and view["pools"]["4"]["answer_fields"] == {"label": "image"}


async def test_new_defaults_apply_to_pools_already_seen_by_the_crowd(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    await _json(await http.post("/_emulator/crowd", json={"defaults": {"performers": 1}}))
    [task_id] = await _tasks(http, "4", [2])
    await clock.advance(HOUR)
    assert [a["user_id"] for a in await _assignments(http, "pool_id=4")] == ["performer-01"]
    assert (await _json(await http.get(f"/api/v1/tasks/{task_id}")))["remaining_overlap"] == 1
    assert (await _json(await http.get("/api/v1/pools/4")))["status"] == "OPEN"


def test_crowd_config_file_sets_seed_defaults_and_pool_settings(tmp_path: Path) -> None:
    path = tmp_path / "crowd.json"
    path.write_text(json.dumps({"seed": 5, "defaults": {"latency_s": 10}, "pools": {"4": {"performers": 2}}}))
    state = EmulatorState()
    load_crowd_config(state, path)
    assert (state.crowd.seed, state.crowd.defaults.latency_s) == (5, 10)
    assert state.crowd.pool("4").settings.performers == 2
    assert state.crowd.pool("1").settings.latency_s == 10
    path.write_text(json.dumps({"defaults": {"latency": 1}}))
    with pytest.raises(ValueError, match="latency"):
        load_crowd_config(state, path)


async def test_assignments_of_a_pool_page_by_id_both_ways(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    await _tasks(http, "4", [2] * 5)
    await clock.advance(HOUR)
    every = [a["id"] for a in await _assignments(http, "pool_id=4")]
    assert every == sorted(every) and len(every) == 10
    seen: list[str] = []
    query = "pool_id=4&limit=3"
    while True:
        page = await _json(await http.get(f"/api/v1/assignments?{query}"))
        seen += [a["id"] for a in page["items"]]
        if not page["has_more"]:
            break
        query = f"pool_id=4&limit=3&id_gt={seen[-1]}"
    assert seen == every
    down = await _json(await http.get(f"/api/v1/assignments?pool_id=4&sort=-id&limit=4&id_lt={every[8]}"))
    assert [a["id"] for a in down["items"]] == every[4:8][::-1] and down["has_more"] is True
    full = await _assignments(http, "pool_id=4")
    mine = [a["id"] for a in full if a["user_id"] == "performer-01" and a["id"] >= every[5]]
    query = f"pool_id=4&sort=id&id_gte={every[5]}&user_id=performer-01"
    assert [a["id"] for a in await _assignments(http, query)] == mine


async def test_seeded_open_pool_stays_open_for_three_days_after_the_crowd_is_done(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    await clock.advance(HOUR)
    assert len(await _assignments(http, "pool_id=2")) == 9
    assert (await _json(await http.get("/api/v1/pools/2")))["status"] == "OPEN"
    await clock.advance(3 * 24 * HOUR)
    pool = await _json(await http.get("/api/v1/pools/2"))
    assert (pool["status"], pool["last_close_reason"]) == ("CLOSED", "COMPLETED")


async def test_assignments_slower_than_the_max_duration_expire_and_the_task_is_issued_again(
    http: aiohttp.ClientSession, clock: ManualClock
) -> None:
    await _json(await http.post("/_emulator/crowd/pools/4", json={"latency_s": 700, "performers": 2}))
    ids = await _tasks(http, "4", [1, 1, 1])
    await clock.advance(24 * HOUR)
    done = await _assignments(http, "pool_id=4")
    submitted = [a for a in done if a["status"] == "SUBMITTED"]
    expired = [a for a in done if a["status"] == "EXPIRED"]
    assert sorted(a["tasks"][0]["id"] for a in submitted) == sorted(ids)
    assert expired
    for a in expired:
        assert date_key(a["expired"]) - date_key(a["created"]) == pytest.approx(600, abs=0.01)
    for a in submitted:
        assert date_key(a["submitted"]) - date_key(a["created"]) <= 600
    assert (await _json(await http.get("/api/v1/pools/4")))["last_close_reason"] == "COMPLETED"
