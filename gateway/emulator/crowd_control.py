"""Control endpoints and the config file for the simulated crowd.

- `GET /_emulator/crowd` — `{enabled, seed, defaults, pools: {pool_id: settings}}`
- `POST /_emulator/crowd` — change any of `enabled` (bool), `seed` (int), `defaults` (settings JSON),
  `pools` (`{pool_id: settings JSON}`); returns the result as `GET` does
- `POST /_emulator/crowd/pools/{pool_id}` — change one pool's settings; returns them
- `POST /_emulator/crowd/revoke` — `{pool_id, user_id, reason: SKILL_CHANGE | RESTRICTION, skill_id?}`:
  the performer loses access to the pool and its USERS_ASSESSMENT rules act; returns
  `{"reexecuted": n}` (tasks or suites given more overlap)

A crowd config file holds the same JSON as `POST /_emulator/crowd` (post it with
`curl --data @crowd.json`, or pass it to `load_crowd_config` / `run_forever(crowd_config=)`). Settings keys are those of
`crowd_settings.CrowdSettings`; an unknown key or a bad value is a 400 naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from gateway.emulator.crowd_settings import CrowdSettings
from gateway.emulator.quality import on_revocation
from gateway.emulator.state import STATE_KEY, EmulatorState
from gateway.emulator.wire import JSON, json_response

_REASONS = ("SKILL_CHANGE", "RESTRICTION")


def _object(value: Any, what: str) -> JSON:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object")
    return value


def crowd_view(state: EmulatorState) -> JSON:
    """The crowd's switch, seed and settings."""
    crowd = state.crowd
    return {
        "enabled": crowd.enabled,
        "seed": crowd.seed,
        "defaults": crowd.defaults.to_json(),
        "pools": {pool_id: s.to_json() for pool_id, s in sorted(crowd.pool_settings.items())},
    }


def apply_crowd_config(state: EmulatorState, config: JSON) -> None:
    """Apply a crowd config (the body of `POST /_emulator/crowd`); ValueError naming what is wrong."""
    crowd = state.crowd
    unknown = sorted(set(config) - {"enabled", "seed", "defaults", "pools"})
    if unknown:
        raise ValueError(f"unknown crowd config key(s): {', '.join(unknown)}")
    if "enabled" in config:
        if not isinstance(config["enabled"], bool):
            raise ValueError("enabled must be a boolean")
        crowd.enabled = config["enabled"]
    if "seed" in config:
        crowd.seed = int(config["seed"])
        crowd.reseed()
    if "defaults" in config:
        crowd.set_defaults(crowd.defaults.updated(_object(config["defaults"], "defaults")))
    for pool_id, settings in _object(config.get("pools", {}), "pools").items():
        base = crowd.pool_settings.get(str(pool_id), crowd.defaults)
        crowd.configure(str(pool_id), base.updated(_object(settings, f"pools.{pool_id}")))
    for pool_id in state.pools:
        state.work_changed(pool_id)


def load_crowd_config(state: EmulatorState, path: str | Path) -> None:
    """Apply a crowd config file (JSON)."""
    apply_crowd_config(state, _object(orjson.loads(Path(path).read_bytes()), str(path)))


async def _body(request: web.Request) -> JSON:
    raw = await request.read()
    return _object(orjson.loads(raw) if raw else {}, "the body")


async def get_crowd(request: web.Request) -> web.Response:
    """The crowd's configuration."""
    return json_response(crowd_view(request.app[STATE_KEY]))


async def set_crowd(request: web.Request) -> web.Response:
    """Change the crowd's configuration."""
    state = request.app[STATE_KEY]
    apply_crowd_config(state, await _body(request))
    return json_response(crowd_view(state))


async def set_pool_crowd(request: web.Request) -> web.Response:
    """Change one pool's crowd settings."""
    state = request.app[STATE_KEY]
    pool_id = request.match_info["pool_id"]
    apply_crowd_config(state, {"pools": {pool_id: await _body(request)}})
    return json_response(state.crowd.pool_settings[pool_id].to_json())


async def revoke(request: web.Request) -> web.Response:
    """Revoke a performer's access to a pool (SKILL_CHANGE or RESTRICTION)."""
    state = request.app[STATE_KEY]
    body = await _body(request)
    reason = body.get("reason")
    if reason not in _REASONS:
        raise ValueError(f"reason must be one of {', '.join(_REASONS)}")
    pool_id, user_id = str(body.get("pool_id")), body.get("user_id")
    if pool_id not in state.pools or not isinstance(user_id, str):
        raise ValueError("pool_id of an existing pool and user_id are required")
    skill_id = body.get("skill_id")
    state.advance()
    count = on_revocation(state, pool_id, user_id, str(reason), None if skill_id is None else str(skill_id))
    return json_response({"reexecuted": count})


def add_crowd_routes(app: web.Application) -> None:
    """Register the crowd's control routes on the `/_emulator/` sub-application."""
    app.router.add_get("/crowd", get_crowd)
    app.router.add_post("/crowd", set_crowd)
    app.router.add_post("/crowd/pools/{pool_id}", set_pool_crowd)
    app.router.add_post("/crowd/revoke", revoke)


__all__ = ["CrowdSettings", "add_crowd_routes", "apply_crowd_config", "load_crowd_config"]
