"""Control endpoints under `/_emulator/` so tests in other processes can drive a running emulator.

- `GET /_emulator/requests?method=POST&path=/api/v1/tasks` — the request log (path is a prefix filter)
- `POST /_emulator/faults` — add a fault (keys of `Fault`); `GET` lists, `DELETE` clears them
- `POST /_emulator/pools` — seed a pool (fields as in `EmulatorState.seed_pool`), returns it
- `POST /_emulator/config` — set knobs (`operation_duration_s`, `pool_operation_duration_s`,
  `overlap_changes_per_hour`, `reopen_after_update_s`, `valid_api_keys` (list or null)); returns them all
- `POST /_emulator/clock/advance` — `{"seconds": s}` moves the emulator's time forward
- `POST /_emulator/operations/finish` — every unfinished operation becomes final now (its effects run);
  returns `{"finished": n}`. `/config` with `{"instant_operations": true}` makes later ones final at once
  (both operation durations 0)
- `POST /_emulator/reset` — `EmulatorState.reset()`, which also undoes every clock advance

The crowd's endpoints (`/_emulator/crowd...`) are listed in `crowd_control`.

Control requests need no Authorization and are not recorded.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway.emulator.crowd_control import add_crowd_routes
from gateway.emulator.faults import Fault
from gateway.emulator.state import STATE_KEY, EmulatorState
from gateway.emulator.wire import JSON, json_response

_NUMERIC_KNOBS = ("operation_duration_s", "pool_operation_duration_s", "reopen_after_update_s")


class ControlError(Exception):
    """A bad control request (400 with `{"error": ...}`)."""


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ControlError(f"malformed JSON: {exc}") from exc


def _object(value: Any) -> JSON:
    if not isinstance(value, dict):
        raise ControlError("a JSON object is expected")
    return value


@web.middleware
async def control_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn `ControlError` and bad arguments into 400 `{"error": ...}`."""
    try:
        response: web.StreamResponse = await handler(request)
    except (ControlError, ValueError, TypeError) as exc:
        return json_response({"error": str(exc)}, 400)
    return response


async def list_requests(request: web.Request) -> web.Response:
    """The request log, optionally filtered by `method` and `path` prefix."""
    state = request.app[STATE_KEY]
    method = request.query.get("method", "").upper()
    prefix = request.query.get("path", "")
    return json_response(
        [
            r.to_json()
            for r in state.requests
            if (not method or r.method == method) and r.path.startswith(prefix)
        ]
    )


async def add_fault(request: web.Request) -> web.Response:
    """Add one fault."""
    fault = request.app[STATE_KEY].add_fault(Fault.from_json(_object(await _body(request))))
    return json_response(fault.to_json(), 201)


async def list_faults(request: web.Request) -> web.Response:
    """Faults with uses left."""
    return json_response([f.to_json() for f in request.app[STATE_KEY].faults.active()])


async def clear_faults(request: web.Request) -> web.Response:
    """Remove every fault."""
    request.app[STATE_KEY].clear_faults()
    return json_response({"ok": True})


async def seed_pool(request: web.Request) -> web.Response:
    """Seed one pool."""
    return json_response(request.app[STATE_KEY].seed_pool(**_object(await _body(request))), 201)


async def set_config(request: web.Request) -> web.Response:
    """Change knobs; returns the resulting configuration."""
    state = request.app[STATE_KEY]
    body = _object(await _body(request))
    for key, value in body.items():
        _apply_knob(state, key, value)
    return json_response(config_view(state))


def _apply_knob(state: EmulatorState, key: str, value: Any) -> None:
    if key in _NUMERIC_KNOBS:
        setattr(state, key, float(value))
    elif key == "overlap_changes_per_hour":
        state.overlap_changes_per_hour = int(value)
    elif key == "instant_operations":
        if value is not True:
            raise ControlError("instant_operations only accepts true (set the durations instead)")
        state.operation_duration_s = state.pool_operation_duration_s = 0.0
    elif key == "valid_api_keys":
        state.valid_api_keys = None if value is None else {str(v) for v in value}
    else:
        raise ControlError(f"unknown config key {key!r}")


def config_view(state: EmulatorState) -> JSON:
    """The current knobs (API keys are reported by count only)."""
    view: JSON = {key: getattr(state, key) for key in _NUMERIC_KNOBS}
    view["overlap_changes_per_hour"] = state.overlap_changes_per_hour
    view["valid_api_keys_count"] = None if state.valid_api_keys is None else len(state.valid_api_keys)
    return view


async def get_config(request: web.Request) -> web.Response:
    """The current knobs."""
    return json_response(config_view(request.app[STATE_KEY]))


async def advance_clock(request: web.Request) -> web.Response:
    """Move the emulator's time forward by `seconds`."""
    state = request.app[STATE_KEY]
    seconds = float(_object(await _body(request)).get("seconds", 0))
    if seconds < 0:
        raise ControlError("seconds must be >= 0")
    state.advance_clock(seconds)
    return json_response({"now": state.now()})


async def finish_operations(request: web.Request) -> web.Response:
    """Make every unfinished operation final now."""
    return json_response({"finished": request.app[STATE_KEY].finish_operations_now()})


async def reset(request: web.Request) -> web.Response:
    """Reset the state."""
    request.app[STATE_KEY].reset()
    return json_response({"ok": True})


def control_app(state: EmulatorState) -> web.Application:
    """The `/_emulator/` sub-application."""
    app = web.Application(middlewares=[control_errors])
    app[STATE_KEY] = state
    app.router.add_get("/requests", list_requests)
    app.router.add_post("/faults", add_fault)
    app.router.add_get("/faults", list_faults)
    app.router.add_delete("/faults", clear_faults)
    app.router.add_post("/pools", seed_pool)
    app.router.add_post("/config", set_config)
    app.router.add_get("/config", get_config)
    app.router.add_post("/clock/advance", advance_clock)
    app.router.add_post("/operations/finish", finish_operations)
    app.router.add_post("/reset", reset)
    add_crowd_routes(app)
    return app
