"""A requester's workflow written with toloka-kit 1.2.3, run in toloka-kit's own virtualenv.

    python kit_workflow.py URL sync|async setup|work STATE_JSON

`setup` creates a project, a pool (non-automatic acceptance), its clone, tasks and a task suite, and
checks find_tasks' filters, and gives the performers the skill the pool's filter asks for; it writes the ids to STATE_JSON. `work` opens the pool, lets the crowd work
(advancing the emulator's clock through its control API), accepts and rejects, lowers a performer's
skill below the filter and checks the re-execution; it adds what it saw to STATE_JSON. Any failed check exits non-zero.
The same code runs on `TolokaClient` and `AsyncTolokaClient`: `call` awaits what the async one returns.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import json
import sys
from decimal import Decimal
from typing import Any

import httpx
import toloka.client as toloka
from toloka.async_client import AsyncTolokaClient
from toloka.client.exceptions import ApiError, DoesNotExistApiError
from toloka.client.project.field_spec import StringSpec, UrlSpec
from toloka.client.project.task_spec import TaskSpec
from toloka.client.project.view_spec import ClassicViewSpec

URL, MODE, PHASE, STATE_PATH = sys.argv[1:5]
LOOP = asyncio.new_event_loop()
CLIENT: Any = (AsyncTolokaClient if MODE == "async" else toloka.TolokaClient)(
    "emulated-token", url=URL, retries=0
)
HOUR = 3600


def call(method: str, *args: Any, **kwargs: Any) -> Any:
    result = getattr(CLIENT, method)(*args, **kwargs)
    return LOOP.run_until_complete(result) if inspect.isawaitable(result) else result


def advance(seconds: float) -> None:
    httpx.post(f"{URL}/_emulator/clock/advance", json={"seconds": seconds}).raise_for_status()


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"check failed: {what}")


def setup() -> dict[str, Any]:
    spec = TaskSpec(
        input_spec={"image": UrlSpec()},
        output_spec={"label": StringSpec(allowed_values=["cat", "dog"])},
        view_spec=ClassicViewSpec(script="", markup="{{field type='input' name='label'}}", styles=""),
    )
    project = call(
        "create_project", toloka.Project(public_name="Cats", public_description="Cat?", task_spec=spec)
    )
    check(call("get_project", project.id).public_name == "Cats", "get_project")
    pool = toloka.Pool(
        project_id=project.id,
        private_name="cats",
        may_contain_adult_content=False,
        will_expire=datetime.datetime.utcnow() + datetime.timedelta(days=30),
        reward_per_assignment=0.01,
        assignment_max_duration_seconds=600,
        auto_accept_solutions=False,
        auto_accept_period_day=7,
        defaults=toloka.Pool.Defaults(default_overlap_for_new_tasks=1, default_overlap_for_new_task_suites=1),
        filter=toloka.filter.Skill("2626") >= 80,
    )
    for n in range(1, 11):
        call("set_user_skill", skill_id="2626", user_id=f"performer-{n:02d}", value=Decimal(90))
    pool = call("create_pool", pool)
    clone = call("clone_pool", pool.id)
    check(clone.id != pool.id and clone.private_name == "cats", "clone_pool")
    pools = call("find_pools", project_id=project.id, sort=["-id"])
    check([p.id for p in pools.items] == [clone.id, pool.id], "find_pools by project, sorted")
    tasks = [toloka.Task(pool_id=pool.id, input_values={"image": f"https://e.x/{n}.png"}) for n in range(3)]
    created = call("create_tasks", tasks, allow_defaults=True)
    task_ids = [created.items[str(n)].id for n in range(3)]
    suite = toloka.TaskSuite(
        pool_id=pool.id, overlap=1, tasks=[toloka.Task(input_values={"image": "https://e.x/s.png"})]
    )
    suite = call("create_task_suite", suite)
    next_year = datetime.datetime.utcnow() + datetime.timedelta(days=365)
    check(call("find_tasks", pool_id=pool.id, created_gt=next_year).items == [], "find_tasks created_gt")
    newest = call("find_tasks", pool_id=pool.id, sort=["-created", "-id"])
    check([t.id for t in newest.items] == task_ids[::-1], "find_tasks sort -created,-id")
    check(len(call("find_tasks", pool_id=pool.id, overlap_gte=2).items) == 0, "find_tasks overlap_gte")
    try:
        call("get_user_bonus", "1")
        check(False, "an un-emulated endpoint must fail")
    except DoesNotExistApiError:
        check(False, "an un-emulated endpoint must not read as a missing resource")
    except ApiError as exc:
        check(exc.status_code == 501 and exc.code == "NOT_EMULATED", f"501 NOT_EMULATED, got {exc}")
    return {"project_id": project.id, "pool_id": pool.id, "task_ids": task_ids, "suite_id": suite.id}


def work(state: dict[str, Any]) -> dict[str, Any]:
    pool_id, task_ids = state["pool_id"], state["task_ids"]
    call("open_pool", pool_id)
    advance(HOUR)
    submitted = call("find_assignments", pool_id=pool_id, status="SUBMITTED", sort=["id"]).items
    check(len(submitted) == 4, f"4 submitted assignments, got {len(submitted)}")
    check(call("get_pool", pool_id).status.value == "CLOSED", "a finished pool closes")
    rejected = next(a for a in submitted if a.tasks[0].id == task_ids[0])
    for assignment in submitted:
        if assignment.id != rejected.id:
            call("accept_assignment", assignment.id, "good")
    call("reject_assignment", rejected.id, "wrong label")
    check(call("get_task", task_ids[0]).overlap == 2, "overlap grew by delta after the reject")
    check(call("get_pool", pool_id).status.value == "OPEN", "open_pool reopened the pool")
    advance(HOUR)
    redo = call("find_assignments", task_id=task_ids[0], sort=["created"]).items
    check([a.status.value for a in redo] == ["REJECTED", "SUBMITTED"], "the rejected task is done again")
    check(redo[1].user_id != rejected.user_id, "by another performer")
    accepted = call("find_assignments", pool_id=pool_id, status="ACCEPTED").items
    check(len(accepted) == 3, "3 accepted")
    performer = accepted[0].user_id
    theirs = call("find_assignments", pool_id=pool_id, user_id=performer, status="ACCEPTED,SUBMITTED").items
    before = {
        a.task_suite_id: len(call("find_assignments", task_suite_id=a.task_suite_id).items) for a in theirs
    }
    call("set_user_skill", skill_id="2626", user_id=performer, value=Decimal(10))
    advance(HOUR)
    for suite_id, count in before.items():
        again = call("find_assignments", task_suite_id=suite_id, sort=["created"]).items
        check(len(again) == count + 1, "a revoked performer's work is done again")
        check(again[-1].user_id != performer, "by another performer")
    fields = [toloka.aggregation.PoolAggregatedSolutionRequest.Field(name="label")]
    operation = call("aggregate_solutions_by_pool", type="DAWID_SKENE", pool_id=pool_id, fields=fields)
    operation = call("wait_operation", operation)
    solutions = call("find_aggregated_solutions", operation.id, sort=["task_id"]).items
    check(
        len(solutions) == 4 and all(s.output_values["label"] in ("cat", "dog") for s in solutions),
        "aggregated",
    )
    everything = call("find_assignments", pool_id=pool_id, sort=["id"]).items
    seen = [[a.user_id, a.tasks[0].input_values["image"], a.solutions[0].output_values] for a in everything]
    return {**state, "assignments": seen}


def main() -> None:
    with open(STATE_PATH) as f:
        state = json.load(f)
    state = setup() if PHASE == "setup" else work(state)
    with open(STATE_PATH, "w") as f:
        json.dump(state, f)


if __name__ == "__main__":
    main()
