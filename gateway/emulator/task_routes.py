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

import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from gateway.emulator import listing
from gateway.emulator.listing import ListSpec, equals
from gateway.emulator.operations import Operation
from gateway.emulator.state import STATE_KEY, EmulatorState
from gateway.emulator.tasks import (
    MAX_INPUT_VALUES_BYTES,
    MAX_SYNC_ITEMS,
    input_values_size,
    task_view,
    validate_task,
)
from gateway.emulator.wire import (
    JSON,
    ApiError,
    canonical_uuid,
    error_body,
    field_error,
    json_response,
    not_found,
    parse_bool,
    validation_error,
)

MAX_LIST_LIMIT = 100_000
_SIZE_CHECK_FLOOR = 512 * 1024  # bodies below this cannot carry 1 MiB of input_values
Validated = list[tuple[dict[str, JSON], int | None]]


async def read_json(request: web.Request) -> Any:
    """The JSON body; 415 without `Content-Type: application/json`, 400 when empty or malformed."""
    raw = await request.read()
    if not raw:
        raise validation_error({"body": field_error("VALUE_REQUIRED", "Request body is required")})
    if request.content_type != "application/json":
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise validation_error({"body": field_error("INVALID_JSON", str(exc))}, "Malformed JSON") from exc


async def create_tasks(request: web.Request) -> web.Response:
    """`POST /api/v1/tasks` in sync or async mode."""
    state = request.app[STATE_KEY]
    query = request.query
    async_mode = parse_bool(query.get("async_mode"), "async_mode")
    allow_defaults = parse_bool(query.get("allow_defaults"), "allow_defaults")
    skip_invalid = parse_bool(query.get("skip_invalid_items"), "skip_invalid_items")
    open_pool = parse_bool(query.get("open_pool"), "open_pool")
    op_id = _operation_id(state, query.get("operation_id")) if async_mode else None
    body = await read_json(request)
    if isinstance(body, dict):
        items: list[Any] = [body]
    elif isinstance(body, list):
        items = body
    else:
        raise validation_error({"body": field_error("VALUE_NOT_ALLOWED", "Object or array expected")})
    if not async_mode and len(items) > MAX_SYNC_ITEMS:
        raise ApiError(413, "ENTITY_TOO_LARGE", f"At most {MAX_SYNC_ITEMS} tasks in synchronous mode")
    if len(await request.read()) > _SIZE_CHECK_FLOOR:
        size = input_values_size(items)
        if size > MAX_INPUT_VALUES_BYTES:
            message = f"Total size of input_values is {size} bytes, at most {MAX_INPUT_VALUES_BYTES} allowed"
            raise validation_error({"input_values": field_error("VALUE_GREATER_THAN_MAX", message)}, message)
    state.advance()
    validated = [validate_task(item, state.pools, allow_defaults) for item in items]
    if op_id is None:
        return _create_sync(
            state,
            items,
            validated,
            single=isinstance(body, dict),
            skip_invalid=skip_invalid,
            open_pool=open_pool,
        )
    params = {"skip_invalid_items": skip_invalid, "allow_defaults": allow_defaults, "open_pool": open_pool}
    op = _batch_operation(state, op_id, items, validated, params)
    state.add_operation(op)
    state.advance()
    return json_response(op.view(state.now()), 202)


def _operation_id(state: EmulatorState, raw: str | None) -> str:
    if raw is None:
        return str(uuid.uuid4())
    op_id = canonical_uuid(raw)
    if op_id is None:
        raise validation_error({"operation_id": field_error("INVALID_UUID", "operation_id must be a UUID")})
    if op_id in state.operations:
        raise ApiError(409, "OPERATION_ALREADY_EXISTS", f"Operation {op_id} already exists")
    return op_id


def _create_sync(
    state: EmulatorState,
    items: list[Any],
    validated: Validated,
    *,
    single: bool,
    skip_invalid: bool,
    open_pool: bool,
) -> web.Response:
    errors = {str(i): errs for i, (errs, _) in enumerate(validated) if errs}
    if errors and (single or not skip_invalid):
        raise validation_error(errors["0"] if single else errors)
    created: dict[str, JSON] = {}
    for i, (item, (errs, overlap)) in enumerate(zip(items, validated, strict=True)):
        if not errs:
            created[str(i)] = _store(state, item, overlap)
    if open_pool:
        for pool_id in {view["pool_id"] for view in created.values()}:
            _open_now(state, pool_id)
    if single:
        return json_response(created["0"], 201)
    result: JSON = {"items": created}
    if skip_invalid:
        result["validation_errors"] = errors
    return json_response(result, 201)


def _store(state: EmulatorState, item: JSON, overlap: int | None) -> JSON:
    pool_id = str(item["pool_id"])
    view = task_view(item, state.new_task_id(pool_id), state.timestamp(), overlap)
    state.store_task(view)
    return view


def _open_now(state: EmulatorState, pool_id: str) -> JSON | None:
    """Open a pool as the tail of a task batch; returns a POOL_OPEN failure log output, if any."""
    pool = state.pools[pool_id]
    if pool["status"] == "OPEN":
        return None
    if pool["status"] != "CLOSED":
        return error_body("INAPPROPRIATE_STATUS", f"Pool {pool_id} is {pool['status']}")
    if not state.pool_has_tasks(pool_id):
        return error_body("EMPTY_POOL", "Pool contains no tasks. Operation is not allowed")
    pool["status"] = "OPEN"
    pool["last_started"] = state.timestamp()
    state.last_status_change[pool_id] = "task-batch-open"
    return None


def _batch_operation(
    state: EmulatorState, op_id: str, items: list[Any], validated: Validated, params: JSON
) -> Operation:
    invalid = sum(1 for errs, _ in validated if errs)
    fails = invalid > 0 and not params["skip_invalid_items"]
    valid = len(items) - invalid
    op = Operation(
        id=op_id,
        type="TASK.BATCH_CREATE",
        submitted_at=state.now(),
        duration_s=state.operation_duration_s,
        parameters=params,
        succeeds=not fails,
        details={
            "total_count": len(items),
            "valid_count": valid,
            "not_valid_count": invalid,
            "success_count": 0 if fails else valid,
            "failed_count": invalid,
        },
    )

    def finish() -> None:
        pools: list[str] = []
        for item, (errs, overlap) in zip(items, validated, strict=True):
            if errs:
                op.log.append({"type": "TASK_VALIDATE", "success": False, "input": item, "output": errs})
            elif not fails:
                view = _store(state, item, overlap)
                op.log.append(
                    {"type": "TASK_CREATE", "success": True, "input": item, "output": {"task_id": view["id"]}}
                )
                if view["pool_id"] not in pools:
                    pools.append(view["pool_id"])
        if params["open_pool"] and not fails:
            targets = pools or sorted(
                {
                    str(i["pool_id"])
                    for i in items
                    if isinstance(i, dict) and str(i.get("pool_id")) in state.pools
                }
            )
            for pool_id in targets:
                failure = _open_now(state, pool_id)
                if failure is not None:
                    op.log.append(
                        {
                            "type": "POOL_OPEN",
                            "success": False,
                            "input": {"pool_id": pool_id},
                            "output": failure,
                        }
                    )

    op.on_finish = finish
    return op


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
_ID_ONLY = frozenset({"pool_id", "id_gt", "id_gte", "id_lt", "id_lte", "limit", "sort"})


async def list_tasks(request: web.Request) -> web.Response:
    """`GET /api/v1/tasks`: every filter and sort of toloka-kit's TaskSearchRequest (see `listing`)."""
    state = request.app[STATE_KEY]
    state.advance()
    query = request.query
    if query.keys() <= _ID_ONLY and query.get("sort", "id") in ("id", "-id") and "pool_id" in query:
        return json_response(_pool_tasks_by_id(state, query))
    pool_id = query.get("pool_id")
    candidates = (
        (state.tasks[t] for t in state.pool_task_ids.get(pool_id, []))
        if pool_id is not None
        else state.tasks.values()
    )
    return json_response(listing.page(TASKS_LIST, query, candidates))


def _pool_tasks_by_id(state: EmulatorState, query: Mapping[str, str]) -> JSON:
    """The fast path for paging one pool by id: its ids are kept in creation (= id) order."""
    limit = listing.parse(TASKS_LIST, query).limit
    ids = state.pool_task_ids.get(query["pool_id"], [])
    lo, hi = 0, len(ids)
    if "id_gt" in query:
        lo = max(lo, bisect_right(ids, query["id_gt"]))
    if "id_gte" in query:
        lo = max(lo, bisect_left(ids, query["id_gte"]))
    if "id_lt" in query:
        hi = min(hi, bisect_left(ids, query["id_lt"]))
    if "id_lte" in query:
        hi = min(hi, bisect_right(ids, query["id_lte"]))
    if query.get("sort", "id") == "id":
        selected = ids[lo : min(hi, lo + limit + 1)] if lo < hi else []
    else:
        selected = ids[max(lo, hi - limit - 1) : hi][::-1] if lo < hi else []
    return {"items": [state.tasks[t] for t in selected[:limit]], "has_more": len(selected) > limit}
