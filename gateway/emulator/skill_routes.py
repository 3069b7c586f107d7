"""Performers' skills and the skill conditions of pool filters: `PUT /api/v1/user-skills` (set),
`GET /api/v1/user-skills/{id}`, `GET /api/v1/user-skills` (list), `DELETE /api/v1/user-skills/{id}`.

A pool's `filter` (`and` / `or` trees of conditions) is evaluated for its `skill` conditions only
(`{"category": "skill", "key": <skill id>, "operator": ..., "value": ...}`; a missing skill matches only
`EQ null`); conditions of every other category count as met. A performer who does not pass takes no work
in the pool. When setting or deleting a skill makes a performer who passed a pool's filter fail it, that
is a `SKILL_CHANGE` revocation with that `skill_id`: the pool's USERS_ASSESSMENT rules act (see
`quality`). Passing again gives access back.
"""

from __future__ import annotations

from aiohttp import web

from gateway.emulator import listing
from gateway.emulator.batch_create import read_object
from gateway.emulator.listing import ListSpec, equals
from gateway.emulator.quality import on_revocation, passes, skill_keys
from gateway.emulator.state import STATE_KEY, EmulatorState
from gateway.emulator.wire import JSON, field_error, json_response, not_found, validation_error

SKILLS_LIST = ListSpec(
    "/api/v1/user-skills",
    filters={"user_id": equals("user_id"), "skill_id": equals("skill_id")},
    ranges={"id": "id", "created": "date", "modified": "date"},
    sorts=("id", "created", "modified"),
    max_limit=1000,
)


def _after_change(state: EmulatorState, user_id: str, skill_id: str, before: dict[str, float]) -> None:
    after = state.crowd.skills_of(user_id)
    for pool_id, pool in list(state.pools.items()):
        tree = pool.get("filter")
        if skill_id not in skill_keys(tree):
            continue
        if passes(tree, before) and not passes(tree, after):
            on_revocation(state, pool_id, user_id, "SKILL_CHANGE", skill_id, bar=False)
        else:
            state.work_changed(pool_id)


async def set_user_skill(request: web.Request) -> web.Response:
    """`PUT /api/v1/user-skills` `{skill_id, user_id, value}` → 201 with the UserSkill."""
    state = request.app[STATE_KEY]
    state.advance()
    body = await read_object(request)
    errors: dict[str, JSON] = {}
    for name in ("skill_id", "user_id"):
        if not isinstance(body.get(name), str | int) or body.get(name) in ("", None):
            errors[name] = field_error("VALUE_REQUIRED", f"{name} expected")
    value = body.get("value")
    number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else -1.0
    if not 0 <= number <= 100:
        errors["value"] = field_error("VALUE_NOT_ALLOWED", "value must be a number in 0..100")
    if errors:
        raise validation_error(errors)
    user_id, skill_id = str(body["user_id"]), str(body["skill_id"])
    before = state.crowd.skills_of(user_id)
    skill = state.crowd.set_skill(user_id, skill_id, number, state.timestamp())
    _after_change(state, user_id, skill_id, before)
    return json_response(skill, 201)


def _find(state: EmulatorState, user_skill_id: str) -> JSON:
    state.advance()
    for skill in state.crowd.user_skills.values():
        if skill["id"] == user_skill_id:
            return skill
    raise not_found(f"User skill {user_skill_id}")


async def get_user_skill(request: web.Request) -> web.Response:
    """`GET /api/v1/user-skills/{id}`."""
    return json_response(_find(request.app[STATE_KEY], request.match_info["user_skill_id"]))


async def list_user_skills(request: web.Request) -> web.Response:
    """`GET /api/v1/user-skills` with toloka-kit's UserSkillSearchRequest filters and sort."""
    state = request.app[STATE_KEY]
    state.advance()
    return json_response(listing.page(SKILLS_LIST, request.query, state.crowd.user_skills.values()))


async def delete_user_skill(request: web.Request) -> web.Response:
    """`DELETE /api/v1/user-skills/{id}` → 204."""
    state = request.app[STATE_KEY]
    skill = _find(state, request.match_info["user_skill_id"])
    user_id, skill_id = skill["user_id"], skill["skill_id"]
    before = state.crowd.skills_of(user_id)
    del state.crowd.user_skills[(user_id, skill_id)]
    _after_change(state, user_id, skill_id, before)
    return web.Response(status=204)
