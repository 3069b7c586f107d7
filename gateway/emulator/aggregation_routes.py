"""Aggregated solutions by majority vote: `POST /api/v1/aggregated-solutions/aggregate-by-pool` (a
`SOLUTION.AGGREGATE` operation), `GET /api/v1/aggregated-solutions/{operation_id}` (its results),
`POST /api/v1/aggregated-solutions/aggregate-by-task` (one task, answered at once).

Whatever `type` is asked for (`DAWID_SKENE`, `WEIGHTED_DYNAMIC_OVERLAP`), the emulator aggregates by
majority vote over the task's SUBMITTED and ACCEPTED assignments, each field on its own;
`answer_weight_skill_id` is accepted and ignored. `confidence` is the winning value's share of the
votes; a tie goes to the value submitted first. Tasks without answers are left out. The results list
honours `task_id` bounds and `sort=task_id|-task_id`.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import orjson
from aiohttp import web

from gateway.emulator import listing
from gateway.emulator.batch_create import read_json
from gateway.emulator.listing import ListSpec
from gateway.emulator.operations import Operation
from gateway.emulator.state import STATE_KEY, EmulatorState
from gateway.emulator.wire import (
    JSON,
    canonical_uuid,
    field_error,
    json_response,
    not_found,
    validation_error,
)

RESULTS_LIST = ListSpec(
    "/api/v1/aggregated-solutions/{operation_id}", ranges={"task_id": "id"}, sorts=("task_id",)
)
_TYPES = ("DAWID_SKENE", "WEIGHTED_DYNAMIC_OVERLAP")


def _request_fields(state: EmulatorState, body: Any) -> tuple[str, list[str]]:
    if not isinstance(body, dict):
        raise validation_error({"body": field_error("OBJECT_EXPECTED", "Object expected")})
    errors: dict[str, JSON] = {}
    pool_id = str(body.get("pool_id"))
    if pool_id not in state.pools:
        errors["pool_id"] = field_error("ENTITY_DOES_NOT_EXIST", f"Pool {body.get('pool_id')} does not exist")
    if body.get("type") not in _TYPES:
        errors["type"] = field_error("VALUE_NOT_ALLOWED", f"type must be one of {', '.join(_TYPES)}")
    fields = body.get("fields")
    raw = [f.get("name") for f in fields if isinstance(f, dict)] if isinstance(fields, list) else []
    names = [n for n in raw if isinstance(n, str) and n]
    if not names or len(names) != len(fields or []):
        errors["fields"] = field_error("VALUE_REQUIRED", "A non-empty array of {name} expected")
    if errors:
        raise validation_error(errors)
    return pool_id, names


def _votes(state: EmulatorState, pool_id: str) -> dict[str, list[JSON]]:
    """Every task's submitted answers, in submission order."""
    crowd = state.crowd
    votes: dict[str, list[JSON]] = {}
    for assignment_id in crowd.pool_assignment_ids.get(pool_id, []):
        assignment = crowd.assignments[assignment_id]
        if assignment["status"] not in ("SUBMITTED", "ACCEPTED"):
            continue
        for task, solution in zip(assignment["tasks"], assignment["solutions"], strict=True):
            votes.setdefault(task["id"], []).append(solution.get("output_values") or {})
    return votes


def _majority(pool_id: str, task_id: str, answers: list[JSON], names: list[str]) -> JSON:
    output: JSON = {}
    shares: list[float] = []
    for name in names:
        keys = [orjson.dumps(a.get(name), option=orjson.OPT_SORT_KEYS) for a in answers]
        counts = Counter(keys)
        best = max(counts.values())
        winner = next(k for k in keys if counts[k] == best)
        output[name] = orjson.loads(winner)
        shares.append(best / len(keys))
    return {"pool_id": pool_id, "task_id": task_id, "confidence": min(shares), "output_values": output}


async def aggregate_by_pool(request: web.Request) -> web.Response:
    """Start a SOLUTION.AGGREGATE operation over the pool's tasks."""
    state = request.app[STATE_KEY]
    state.advance()
    pool_id, names = _request_fields(state, await read_json(request))
    op = Operation(
        id=str(uuid.uuid4()),
        type="SOLUTION.AGGREGATE",
        submitted_at=state.now(),
        duration_s=state.operation_duration_s,
        parameters={"pool_id": pool_id},
    )

    def finish() -> None:
        votes = _votes(state, pool_id)
        op.results = [_majority(pool_id, task_id, answers, names) for task_id, answers in votes.items()]

    op.on_finish = finish
    state.add_operation(op)
    state.advance()
    return json_response(op.view(state.now()), 202)


async def aggregate_by_task(request: web.Request) -> web.Response:
    """One task's aggregated solution, at once."""
    state = request.app[STATE_KEY]
    state.advance()
    body = await read_json(request)
    pool_id, names = _request_fields(state, body)
    task_id = str(body.get("task_id"))
    answers = _votes(state, pool_id).get(task_id)
    if not answers:
        raise not_found(f"Solutions for task {task_id}")
    return json_response(_majority(pool_id, task_id, answers, names))


async def list_results(request: web.Request) -> web.Response:
    """The results of a finished SOLUTION.AGGREGATE operation."""
    state = request.app[STATE_KEY]
    state.advance()
    raw = request.match_info["op_id"]
    op_id = canonical_uuid(raw)
    op = state.operations.get(op_id) if op_id is not None else None
    if op is None or op.type != "SOLUTION.AGGREGATE" or op.results is None:
        raise not_found(f"Aggregation operation {raw}")
    return json_response(listing.page(RESULTS_LIST, request.query, op.results))
