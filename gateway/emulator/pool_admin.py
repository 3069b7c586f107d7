"""Pools as a collection: `POST /api/v1/pools` (create), `GET /api/v1/pools` (list),
`POST /api/v1/pools/{id}/clone`.

- Create takes toloka-kit's `Pool` JSON: the required fields of `pools.REQUIRED_FIELDS` (400 naming each
  missing one), `project_id` of an existing project (else 400 `project_id: ENTITY_DOES_NOT_EXIST`) and a
  well-formed `quality_control`. Read-only fields in the body are ignored; the pool starts CLOSED with
  server-assigned `id`, `created`, `owner`, `type: REGULAR` and collector uuids. 201 with the pool.
- Clone answers 202 with a `POOL.CLONE` operation (`parameters.pool_id` the source); when it finishes the
  copy exists, CLOSED and without tasks, and `details.pool_id` names it (what toloka-kit's `clone_pool`
  reads). Any pool can be cloned, archived ones too.
"""

from __future__ import annotations

import copy
import uuid

from aiohttp import web

from gateway.emulator import listing
from gateway.emulator.batch_create import read_object
from gateway.emulator.listing import ListSpec, equals
from gateway.emulator.operations import Operation
from gateway.emulator.pools import READ_ONLY_FIELDS, assign_collector_uuids, validate_pool_body
from gateway.emulator.state import STATE_KEY, EmulatorState
from gateway.emulator.wire import JSON, field_error, json_response, not_found, validation_error

POOLS_LIST = ListSpec(
    "/api/v1/pools",
    filters={"status": equals("status"), "project_id": equals("project_id")},
    ranges={"id": "id", "created": "date", "last_started": "date"},
    sorts=("id", "created", "last_started"),
    max_limit=300,
)
_OWNER = {"id": "emulated-requester", "myself": True, "company_id": "1"}


def _new_pool(state: EmulatorState, form: JSON) -> JSON:
    pool = {k: copy.deepcopy(v) for k, v in form.items() if k not in READ_ONLY_FIELDS}
    pool_id = state.new_pool_id()
    pool.update(id=pool_id, status="CLOSED", created=state.timestamp(), owner=dict(_OWNER), type="REGULAR")
    pool["project_id"] = str(pool["project_id"])
    assign_collector_uuids(pool)
    state.pools[pool_id] = pool
    state.pool_task_ids.setdefault(pool_id, [])
    return pool


async def create_pool(request: web.Request) -> web.Response:
    """`POST /api/v1/pools`."""
    state = request.app[STATE_KEY]
    state.advance()
    body = await read_object(request)
    errors = validate_pool_body(body)
    if body.get("project_id") is not None and str(body["project_id"]) not in state.projects:
        message = f"Project {body['project_id']} does not exist"
        errors["project_id"] = field_error("ENTITY_DOES_NOT_EXIST", message)
    if errors:
        raise validation_error(errors)
    return json_response(_new_pool(state, body), 201)


async def list_pools(request: web.Request) -> web.Response:
    """`GET /api/v1/pools` with toloka-kit's PoolSearchRequest filters and sort."""
    state = request.app[STATE_KEY]
    state.advance()
    return json_response(listing.page(POOLS_LIST, request.query, state.pools.values()))


async def clone_pool(request: web.Request) -> web.Response:
    """`POST /api/v1/pools/{id}/clone` → 202 POOL.CLONE."""
    state = request.app[STATE_KEY]
    state.advance()
    source_id = request.match_info["pool_id"]
    if source_id not in state.pools:
        raise not_found(f"Pool {source_id}")
    op = Operation(
        id=str(uuid.uuid4()),
        type="POOL.CLONE",
        submitted_at=state.now(),
        duration_s=state.pool_operation_duration_s,
        parameters={"pool_id": source_id},
    )

    def finish() -> None:
        source = copy.deepcopy(state.pools[source_id])
        for config in (source.get("quality_control") or {}).get("configs") or []:
            (config.get("collector_config") or {}).pop("uuid", None)
        op.details = {"pool_id": _new_pool(state, source)["id"]}

    op.on_finish = finish
    state.add_operation(op)
    state.advance()
    return json_response(op.view(state.now()), 202)
