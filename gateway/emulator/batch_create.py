"""Creating tasks or task suites in batches: `POST /api/v1/tasks` and `POST /api/v1/task-suites`.

Both share one behaviour (see `task_routes` for the choices where Toloka is undocumented); a `Kind`
says what differs: validation, the stored view, the operation type and the log item types.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from gateway.emulator.operations import Operation
from gateway.emulator.state import STATE_KEY, EmulatorState
from gateway.emulator.tasks import MAX_INPUT_VALUES_BYTES, MAX_SYNC_ITEMS, input_values_size
from gateway.emulator.wire import (
    JSON,
    ApiError,
    canonical_uuid,
    error_body,
    field_error,
    json_response,
    parse_bool,
    validation_error,
)

_SIZE_CHECK_FLOOR = 512 * 1024  # bodies below this cannot carry 1 MiB of input_values
Validated = list[tuple[dict[str, JSON], int | None]]


@dataclass(frozen=True, slots=True)
class Kind:
    """What a batch creates: `validate(item, pools, allow_defaults)` and `store(state, valid)`, which
    stores the valid items (each with its resolved overlap) in order and returns their views."""

    noun: str
    op_type: str
    create_log: str
    validate_log: str
    output_key: str
    validate: Callable[[Any, dict[str, JSON], bool], tuple[dict[str, JSON], int | None]]
    store: Callable[[EmulatorState, list[tuple[JSON, int | None]]], list[JSON]]


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


async def read_object(request: web.Request) -> JSON:
    """The JSON body, which must be an object (400 `body: OBJECT_EXPECTED` otherwise)."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise validation_error({"body": field_error("OBJECT_EXPECTED", "Object expected")})
    return body


async def create(request: web.Request, kind: Kind) -> web.Response:
    """Create items of `kind` in sync or async mode."""
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
        raise ApiError(413, "ENTITY_TOO_LARGE", f"At most {MAX_SYNC_ITEMS} {kind.noun}s in synchronous mode")
    if len(await request.read()) > _SIZE_CHECK_FLOOR:
        size = input_values_size(items)
        if size > MAX_INPUT_VALUES_BYTES:
            message = f"Total size of input_values is {size} bytes, at most {MAX_INPUT_VALUES_BYTES} allowed"
            raise validation_error({"input_values": field_error("VALUE_GREATER_THAN_MAX", message)}, message)
    state.advance()
    validated = [kind.validate(item, state.pools, allow_defaults) for item in items]
    if op_id is None:
        single = isinstance(body, dict)
        return _create_sync(
            state, kind, items, validated, single=single, skip_invalid=skip_invalid, open_pool=open_pool
        )
    params = {"skip_invalid_items": skip_invalid, "allow_defaults": allow_defaults, "open_pool": open_pool}
    op = _batch_operation(state, kind, op_id, items, validated=validated, params=params)
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
    kind: Kind,
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
    valid = [
        (i, item, overlap)
        for i, (item, (errs, overlap)) in enumerate(zip(items, validated, strict=True))
        if not errs
    ]
    views = kind.store(state, [(item, overlap) for _, item, overlap in valid])
    created = {str(i): view for (i, _, _), view in zip(valid, views, strict=True)}
    if open_pool:
        for pool_id in {view["pool_id"] for view in created.values()}:
            open_now(state, pool_id)
    if single:
        return json_response(created["0"], 201)
    result: JSON = {"items": created}
    if skip_invalid:
        result["validation_errors"] = errors
    return json_response(result, 201)


def open_now(state: EmulatorState, pool_id: str) -> JSON | None:
    """Open a pool as the tail of a batch; returns a POOL_OPEN failure log output, if any."""
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
    state.work_changed(pool_id)
    return None


def _batch_operation(
    state: EmulatorState, kind: Kind, op_id: str, items: list[Any], *, validated: Validated, params: JSON
) -> Operation:
    invalid = sum(1 for errs, _ in validated if errs)
    fails = invalid > 0 and not params["skip_invalid_items"]
    valid = len(items) - invalid
    op = Operation(
        id=op_id,
        type=kind.op_type,
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
    op.on_finish = lambda: _finish_batch(state, kind, op, items, validated=validated, fails=fails)
    return op


def _finish_batch(
    state: EmulatorState, kind: Kind, op: Operation, items: list[Any], *, validated: Validated, fails: bool
) -> None:
    valid = [(item, overlap) for item, (errs, overlap) in zip(items, validated, strict=True) if not errs]
    stored = [] if fails else kind.store(state, valid)
    pools = {view["pool_id"]: None for view in stored}  # in order of their first task
    ids = [view["id"] for view in stored]
    invalid = {i: errs for i, (errs, _) in enumerate(validated) if errs}
    # The log is made when it is first read: most batches' logs never are, and it is one dict per item.
    op.log_head = lambda: _batch_log(kind, items, invalid, ids)
    if op.parameters["open_pool"] and not fails:
        targets = list(pools) or sorted(
            {str(i["pool_id"]) for i in items if isinstance(i, dict) and str(i.get("pool_id")) in state.pools}
        )
        for pool_id in targets:
            failure = open_now(state, pool_id)
            if failure is not None:
                entry = {
                    "type": "POOL_OPEN",
                    "success": False,
                    "input": {"pool_id": pool_id},
                    "output": failure,
                }
                op.log.append(entry)


def _batch_log(kind: Kind, items: list[Any], invalid: dict[int, JSON], ids: list[str]) -> list[JSON]:
    """A batch operation's log items, one per input in input order (none for a failed batch's valid
    items: nothing was created)."""
    log: list[JSON] = []
    created = iter(ids)
    create_log, output_key = kind.create_log, kind.output_key
    for i, item in enumerate(items):
        errs = invalid.get(i)
        if errs is not None:
            log.append({"type": kind.validate_log, "success": False, "input": item, "output": errs})
        else:
            task_id = next(created, None)
            if task_id is not None:
                log.append(
                    {"type": create_log, "success": True, "input": item, "output": {output_key: task_id}}
                )
    return log
