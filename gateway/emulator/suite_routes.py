"""Task suites: `POST /api/v1/task-suites` (sync and async, same rules and `operation_id` idempotency as
tasks), `GET /api/v1/task-suites/{id}`, `GET /api/v1/task-suites` (list), `PATCH /api/v1/task-suites/{id}`
and `PATCH /api/v1/task-suites/{id}/set-overlap-or-min`.

A suite is `{pool_id, tasks: [{input_values, known_solutions?, message_on_unknown_solution?}], overlap |
infinite_overlap, ...}` (toloka-kit's `TaskSuite`). `allow_defaults` takes the pool's
`defaults.default_overlap_for_new_task_suites`. Every task of a suite gets an `id`; suite tasks are not
listed by `GET /tasks`. The async operation is `TASK_SUITE.BATCH_CREATE`, its log items
`TASK_SUITE_CREATE` (`task_suite_id`) and `TASK_SUITE_VALIDATE`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.emulator import listing
from gateway.emulator.batch_create import Kind, create, read_object
from gateway.emulator.listing import ListSpec, equals
from gateway.emulator.state import STATE_KEY, EmulatorState
from gateway.emulator.tasks import check_overlap, check_pool, patch_unit
from gateway.emulator.wire import JSON, field_error, json_response, not_found

_SUITE_FIELDS = (
    "pool_id",
    "reserved_for",
    "unavailable_for",
    "issuing_order_override",
    "mixed",
    "traits_all_of",
    "traits_any_of",
    "traits_none_of_any",
    "longitude",
    "latitude",
)
_TASK_FIELDS = ("input_values", "known_solutions", "message_on_unknown_solution")


def validate_suite(
    item: Any, pools: dict[str, JSON], allow_defaults: bool
) -> tuple[dict[str, JSON], int | None]:
    """Field-path errors of one suite, and its resolved overlap (None = infinite)."""
    if not isinstance(item, dict):
        return {"": field_error("OBJECT_EXPECTED", "Task suite must be a JSON object")}, None
    errors: dict[str, JSON] = {}
    pool = check_pool(item.get("pool_id"), pools, errors)
    tasks = item.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        errors["tasks"] = field_error("VALUE_REQUIRED", "A non-empty array of tasks expected")
    else:
        for i, task in enumerate(tasks):
            values = task.get("input_values") if isinstance(task, dict) else None
            if not isinstance(values, dict) or not values:
                errors[f"tasks[{i}].input_values"] = field_error("VALUE_REQUIRED", "Object expected")
    overlap = check_overlap(item, pool, allow_defaults, errors, "default_overlap_for_new_task_suites")
    return errors, overlap


def store_suite(state: EmulatorState, item: JSON, overlap: int | None) -> JSON:
    """Store a validated suite; its tasks get ids."""
    pool_id = str(item["pool_id"])
    view: JSON = {"id": state.new_task_id(pool_id)}
    view.update({k: item[k] for k in _SUITE_FIELDS if k in item})
    view["pool_id"] = pool_id
    view["tasks"] = [
        {"id": state.new_task_id(pool_id), **{k: t[k] for k in _TASK_FIELDS if k in t}} for t in item["tasks"]
    ]
    view["overlap"] = overlap
    view["infinite_overlap"] = overlap is None
    if overlap is not None:
        view["remaining_overlap"] = overlap
    view["automerged"] = False
    view["created"] = state.timestamp()
    state.store_suite(view)
    state.work_changed(pool_id)
    return view


def store_suites(state: EmulatorState, valid: list[tuple[JSON, int | None]]) -> list[JSON]:
    """Store validated suites in order; their views."""
    return [store_suite(state, item, overlap) for item, overlap in valid]


SUITES = Kind(
    noun="task suite",
    op_type="TASK_SUITE.BATCH_CREATE",
    create_log="TASK_SUITE_CREATE",
    validate_log="TASK_SUITE_VALIDATE",
    output_key="task_suite_id",
    validate=validate_suite,
    store=store_suites,
)
SUITES_LIST = ListSpec(
    "/api/v1/task-suites",
    filters={
        "pool_id": equals("pool_id"),
        "overlap": equals("overlap"),
        "task_id": lambda suite, value: any(t["id"] == value for t in suite["tasks"]),
    },
    ranges={"id": "id", "created": "date", "overlap": "int"},
    sorts=("id", "created"),
    max_limit=100_000,
)


async def create_suites(request: web.Request) -> web.Response:
    """`POST /api/v1/task-suites`."""
    return await create(request, SUITES)


def _suite(state: EmulatorState, suite_id: str) -> JSON:
    state.advance()
    suite = state.suites.get(suite_id)
    if suite is None:
        raise not_found(f"Task suite {suite_id}")
    return suite


async def get_suite(request: web.Request) -> web.Response:
    """`GET /api/v1/task-suites/{id}`."""
    return json_response(_suite(request.app[STATE_KEY], request.match_info["suite_id"]))


async def list_suites(request: web.Request) -> web.Response:
    """`GET /api/v1/task-suites` with toloka-kit's TaskSuiteSearchRequest filters and sort."""
    state = request.app[STATE_KEY]
    state.advance()
    pool_id = request.query.get("pool_id")
    if pool_id is not None:
        ids = state.pool_suite_ids.get(pool_id, [])
        return json_response(
            listing.page_in_id_order(SUITES_LIST, request.query, ids, state.suites.__getitem__)
        )
    return json_response(listing.page(SUITES_LIST, request.query, state.suites.values()))


async def patch_suite(request: web.Request) -> web.Response:
    """`PATCH /api/v1/task-suites/{id}`: `overlap`/`infinite_overlap`, `issuing_order_override`."""
    return await _patch(request, at_least_issued=False)


async def patch_suite_overlap_or_min(request: web.Request) -> web.Response:
    """`PATCH /api/v1/task-suites/{id}/set-overlap-or-min`."""
    return await _patch(request, at_least_issued=True)


async def _patch(request: web.Request, *, at_least_issued: bool) -> web.Response:
    state = request.app[STATE_KEY]
    suite = _suite(state, request.match_info["suite_id"])
    body = await read_object(request)
    patch_unit(state, suite, body, ("issuing_order_override",), at_least_issued=at_least_issued)
    return json_response(suite)
