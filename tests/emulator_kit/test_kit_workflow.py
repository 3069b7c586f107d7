"""A requester's whole workflow with the real toloka-kit 1.2.3, sync and async, against `toloka-gateway
emulator` over real HTTP; the re-execution rules are set through the gateway's SetReworkRules over gRPC.

The checks of each step live in `kit_workflow.py` (run in toloka-kit's virtualenv): project, pool, clone,
tasks, a task suite, find_tasks filters and sort, 501 NOT_EMULATED, assignments appear, accept and
reject, the rejected task's overlap grows and it is done again by another performer, a SKILL_CHANGE
revocation re-executes that performer's work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from tests.emulator_kit.conftest import run_phase
from tests.support.gateway_harness import InProcessGateway

RULES = [
    pb.ReworkRule(
        assessment=pb.AssessmentTrigger(assessment_event=pb.ASSESSMENT_EVENT_REJECT), delta=1, open_pool=True
    ),
    pb.ReworkRule(skill_change=pb.SkillChangeTrigger(skill_id="2626"), delta=1, open_pool=True),
]


async def workflow(
    kit_python: Path, url: str, gw: InProcessGateway, mode: str, tmp_path: Path
) -> dict[str, Any]:
    state_path = tmp_path / f"{mode}.json"
    state_path.write_text("{}")
    state = await run_phase(kit_python, url, mode, "setup", state_path)
    req = pb.SetReworkRulesRequest(pool_id=state["pool_id"], rules=RULES)
    reply = await gw.stub.SetReworkRules(req, metadata=gw.md(), timeout=30)
    assert len(reply.rules) == 2
    async with aiohttp.ClientSession(url, headers={"Authorization": "OAuth x"}) as s:
        pool = await (await s.get(f"/api/v1/pools/{state['pool_id']}")).json()
    collectors = {c["collector_config"]["type"] for c in pool["quality_control"]["configs"]}
    assert collectors == {"ASSIGNMENTS_ASSESSMENT", "USERS_ASSESSMENT"}
    return await run_phase(kit_python, url, mode, "work", state_path)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_toloka_kit_runs_the_whole_workflow(
    kit_python: Path, seeded: str, gateway: InProcessGateway, mode: str, tmp_path: Path
) -> None:
    result = await workflow(kit_python, seeded, gateway, mode, tmp_path)
    users = {user for user, _, _ in result["assignments"]}
    assert len(result["assignments"]) >= 6
    assert all(user.startswith("performer-") for user in users)
    assert all(answer["label"] in ("cat", "dog") for _, _, answer in result["assignments"])


@pytest.mark.timeout(300)
async def test_same_seed_gives_the_same_assignments_to_both_clients(
    kit_python: Path, seeded: str, gateway: InProcessGateway, tmp_path: Path
) -> None:
    first = await workflow(kit_python, seeded, gateway, "sync", tmp_path)
    async with aiohttp.ClientSession(seeded) as s:
        (await s.post("/_emulator/reset")).raise_for_status()
    second = await workflow(kit_python, seeded, gateway, "async", tmp_path)
    assert first["pool_id"] == second["pool_id"]
    assert first["assignments"] == second["assignments"]
