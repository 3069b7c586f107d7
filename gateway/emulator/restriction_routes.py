"""User restrictions: `PUT /api/v1/user-restrictions`, `GET /api/v1/user-restrictions` (list),
`GET /api/v1/user-restrictions/{id}`, `DELETE /api/v1/user-restrictions/{id}`.

A restriction `{user_id, scope: POOL | PROJECT | ALL_PROJECTS, pool_id?, project_id?, private_comment?,
will_expire?}` bars the performer from every pool in scope: a `RESTRICTION` revocation, so the pools'
USERS_ASSESSMENT rules act (see `quality`). Deleting it, or reaching `will_expire` on the emulator's
clock, gives access back. The list honours `user_id`, `scope`, `pool_id`, `project_id` and bounds and
sort on `id` and `created`.
"""

from __future__ import annotations

from aiohttp import web

from gateway.emulator import listing
from gateway.emulator.batch_create import read_object
from gateway.emulator.listing import ListSpec, date_key, equals
from gateway.emulator.quality import on_revocation, pools_in_scope
from gateway.emulator.state import STATE_KEY, EmulatorState
from gateway.emulator.wire import JSON, field_error, json_response, not_found, validation_error

_SCOPES = ("POOL", "PROJECT", "ALL_PROJECTS")
RESTRICTIONS_LIST = ListSpec(
    "/api/v1/user-restrictions",
    filters={name: equals(name) for name in ("user_id", "scope", "pool_id", "project_id")},
    ranges={"id": "id", "created": "date"},
    sorts=("id", "created"),
    max_limit=1000,
)


def _validate(body: JSON) -> None:
    errors: dict[str, JSON] = {}
    if not isinstance(body.get("user_id"), str) or not body["user_id"]:
        errors["user_id"] = field_error("VALUE_REQUIRED", "user_id expected")
    scope = body.get("scope")
    if scope not in _SCOPES:
        errors["scope"] = field_error("VALUE_NOT_ALLOWED", f"scope must be one of {', '.join(_SCOPES)}")
    for needed, name in (("POOL", "pool_id"), ("PROJECT", "project_id")):
        if scope == needed and body.get(name) is None:
            errors[name] = field_error("VALUE_REQUIRED", f"{name} is required for scope {needed}")
    if body.get("will_expire") is not None:
        try:
            date_key(body["will_expire"])
        except ValueError:
            errors["will_expire"] = field_error("VALUE_NOT_ALLOWED", "An ISO 8601 date expected")
    if errors:
        raise validation_error(errors)


def _pools(state: EmulatorState, restriction: JSON) -> list[str]:
    pool_id, project_id = restriction.get("pool_id"), restriction.get("project_id")
    return pools_in_scope(
        state,
        restriction["scope"],
        None if pool_id is None else str(pool_id),
        None if project_id is None else str(project_id),
    )


def _lift(state: EmulatorState, restriction_id: str) -> None:
    restriction = state.crowd.restrictions.pop(restriction_id, None)
    if restriction is None:
        return
    for pool_id in _pools(state, restriction):
        state.crowd.pool(pool_id).revoked.discard(restriction["user_id"])
        state.work_changed(pool_id)


async def put_restriction(request: web.Request) -> web.Response:
    """Bar a performer from the pools in scope → 201 with the restriction."""
    state = request.app[STATE_KEY]
    state.advance()
    body = await read_object(request)
    _validate(body)
    restriction = {**body, "id": str(next(state.crowd.restriction_seq)), "created": state.timestamp()}
    state.crowd.restrictions[restriction["id"]] = restriction
    for pool_id in _pools(state, restriction):
        on_revocation(state, pool_id, body["user_id"], "RESTRICTION", None)
    if body.get("will_expire") is not None:
        state.schedule(date_key(body["will_expire"]), lambda: _lift(state, restriction["id"]))
    return json_response(restriction, 201)


def _restriction(state: EmulatorState, restriction_id: str) -> JSON:
    state.advance()
    restriction = state.crowd.restrictions.get(restriction_id)
    if restriction is None:
        raise not_found(f"User restriction {restriction_id}")
    return restriction


async def get_restriction(request: web.Request) -> web.Response:
    """One restriction."""
    return json_response(_restriction(request.app[STATE_KEY], request.match_info["restriction_id"]))


async def list_restrictions(request: web.Request) -> web.Response:
    """The restrictions in force."""
    state = request.app[STATE_KEY]
    state.advance()
    return json_response(listing.page(RESTRICTIONS_LIST, request.query, state.crowd.restrictions.values()))


async def delete_restriction(request: web.Request) -> web.Response:
    """Lift a restriction → 204."""
    state = request.app[STATE_KEY]
    _lift(state, _restriction(state, request.match_info["restriction_id"])["id"])
    return web.Response(status=204)
