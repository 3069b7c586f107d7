"""Handlers for `/api/v1/tasks` and `/api/v1/operations`.

Choices where Toloka is undocumented (toloka-api.md ❓):
- A task whose pool does not exist is an invalid ITEM (`pool_id: ENTITY_DOES_NOT_EXIST`), not a 404; a task
  for an ARCHIVED pool is invalid with `pool_id: VALUE_NOT_ALLOWED`.
- `overlap` is required unless `infinite_overlap: true`, or `allow_defaults=true` and the pool has
  `defaults.default_overlap_for_new_tasks`.
- Sync with more than 5,000 items → 413 `ENTITY_TOO_LARGE`. Total `input_values` (compact JSON bytes) over
  1,048,576 → 400 `VALIDATION_ERROR` with `payload.input_values.code = VALUE_GREATER_THAN_MAX`, in both modes.
  No hard item cap in async mode.
- Sync with `skip_invalid_items=false` and invalid items → 400 `VALIDATION_ERROR` whose payload maps the
  string index to field errors (for an object body: the field errors directly). An object body is never
  partially accepted.
- `operation_id` is ignored in sync mode (not registered, not checked for reuse). In async mode a malformed
  one → 400 `VALIDATION_ERROR` (`payload.operation_id.code = INVALID_UUID`); it is normalised to the
  canonical lowercase UUID form. Reuse → 409 `OPERATION_ALREADY_EXISTS` regardless of the body.
- Async: tasks are created (and become visible, with ids assigned) when the operation finishes; the log
  is empty until then. With `skip_invalid_items=true` the operation is SUCCESS even if every item was
  invalid. `open_pool=true` opens every pool that received tasks (or, when none were created, the pools
  named by the items), logging a failed `POOL_OPEN` item with `EMPTY_POOL` when a pool has no tasks.
- `GET /operations/{id}` with a malformed id → 404 `DOES_NOT_EXIST` (same as unknown).
- `GET /tasks`: filters `pool_id`, `overlap`, bounds on `id`, `created`, `overlap`; `sort` by `id` and
  `created` (e.g. `-created,-id`); `limit` 1..100,000 (default 50). Anything else → 400 naming it.
"""

from __future__ import annotations

from aiohttp import web

from gateway.emulator import listing
from gateway.emulator.batch_create import Kind, create, read_object
from gateway.emulator.listing import ListSpec, equals
from gateway.emulator.operations import Operation
from gateway.emulator.state import STATE_KEY, EmulatorState
from gateway.emulator.tasks import patch_unit, store_tasks, validate_task
from gateway.emulator.wire import (
    canonical_uuid,
    json_response,
    not_found,
)

MAX_LIST_LIMIT = 100_000
TASKS = Kind(
    noun="task",
    op_type="TASK.BATCH_CREATE",
    create_log="TASK_CREATE",
    validate_log="TASK_VALIDATE",
    output_key="task_id",
    validate=validate_task,
    store=store_tasks,
)


async def create_tasks(request: web.Request) -> web.Response:
    """`POST /api/v1/tasks` in sync or async mode."""
    return await create(request, TASKS)


async def get_operation(request: web.Request) -> web.Response:
    """`GET /api/v1/operations/{id}`; a malformed id is simply unknown (404)."""
    state = request.app[STATE_KEY]
    state.advance()
    op = _find_operation(state, request.match_info["op_id"])
    return json_response(op.view(state.now()))


async def get_operation_log(request: web.Request) -> web.Response:
    """`GET /api/v1/operations/{id}/log`: empty until the operation finishes."""
    state = request.app[STATE_KEY]
    state.advance()
    op = _find_operation(state, request.match_info["op_id"])
    return json_response(op.log_view(state.now()))


def _find_operation(state: EmulatorState, raw: str) -> Operation:
    op_id = canonical_uuid(raw)
    op = state.operations.get(op_id) if op_id is not None else None
    if op is None:
        raise not_found(f"Operation {raw}")
    return op


async def get_task(request: web.Request) -> web.Response:
    """`GET /api/v1/tasks/{id}`."""
    state = request.app[STATE_KEY]
    state.advance()
    task = state.tasks.get(request.match_info["task_id"])
    if task is None:
        raise not_found(f"Task {request.match_info['task_id']}")
    return json_response(task)


TASKS_LIST = ListSpec(
    "/api/v1/tasks",
    filters={"pool_id": equals("pool_id"), "overlap": equals("overlap")},
    ranges={"id": "id", "created": "date", "overlap": "int"},
    sorts=("id", "created"),
    max_limit=MAX_LIST_LIMIT,
)


async def list_tasks(request: web.Request) -> web.Response:
    """`GET /api/v1/tasks`: every filter and sort of toloka-kit's TaskSearchRequest (see `listing`)."""
    state = request.app[STATE_KEY]
    state.advance()
    query = request.query
    pool_id = query.get("pool_id")
    if pool_id is not None:
        ids = state.pool_task_ids.get(pool_id, [])
        return json_response(listing.page_in_id_order(TASKS_LIST, query, ids, state.tasks.__getitem__))
    return json_response(listing.page(TASKS_LIST, query, state.tasks.values()))


OPERATIONS_LIST = ListSpec(
    "/api/v1/operations",
    filters={"type": equals("type"), "status": equals("status")},
    ranges={"id": "id", "submitted": "date", "finished": "date"},
    sorts=("id", "submitted", "finished"),
    max_limit=500,
)


async def list_operations(request: web.Request) -> web.Response:
    """`GET /api/v1/operations` with toloka-kit's OperationSearchRequest filters and sort."""
    state = request.app[STATE_KEY]
    state.advance()
    now = state.now()
    views = (op.view(now) for op in state.operations.values())
    return json_response(listing.page(OPERATIONS_LIST, request.query, views))


async def patch_task(request: web.Request) -> web.Response:
    """`PATCH /api/v1/tasks/{id}`: `overlap`, `infinite_overlap`, `baseline_solutions` (toloka-kit's TaskPatch)."""
    return await _patch_overlap(request, at_least_issued=False)


async def patch_task_overlap_or_min(request: web.Request) -> web.Response:
    """`PATCH /api/v1/tasks/{id}/set-overlap-or-min`: the overlap, but never below what was already issued."""
    return await _patch_overlap(request, at_least_issued=True)


async def _patch_overlap(request: web.Request, *, at_least_issued: bool) -> web.Response:
    state = request.app[STATE_KEY]
    state.advance()
    task_id = request.match_info["task_id"]
    task = state.tasks.get(task_id)
    if task is None:
        raise not_found(f"Task {task_id}")
    body = await read_object(request)
    patch_unit(state, task, body, ("baseline_solutions",), at_least_issued=at_least_issued)
    return json_response(task)
