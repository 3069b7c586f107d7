"""Projects: `POST /api/v1/projects`, `GET /api/v1/projects/{id}`, `PUT /api/v1/projects/{id}`,
`GET /api/v1/projects` (list).

Bodies are toloka-kit's `Project` JSON. `public_name`, `public_description` and `task_spec` with
`input_spec` and `output_spec` are required (400 `VALIDATION_ERROR` naming each missing field);
`assignments_issuing_type` defaults to `AUTOMATED`. `id`, `status` (`ACTIVE`), `created` and `owner`
are the server's; other fields are stored and returned as sent.
"""

from __future__ import annotations

import copy

from aiohttp import web

from gateway.emulator import listing
from gateway.emulator.batch_create import read_json
from gateway.emulator.listing import ListSpec, equals
from gateway.emulator.state import STATE_KEY, EmulatorState
from gateway.emulator.wire import JSON, field_error, json_response, not_found, validation_error

_READ_ONLY = ("id", "status", "created", "owner")
_REQUIRED = "Value must be present and not equal to null"
PROJECTS_LIST = ListSpec(
    "/api/v1/projects",
    filters={"status": equals("status")},
    ranges={"id": "id", "created": "date"},
    sorts=("id", "created", "public_name", "private_comment"),
    max_limit=300,
)


def validate_project(body: object) -> JSON:
    """The body as a project form; 400 naming every missing required field."""
    if not isinstance(body, dict):
        raise validation_error({"body": field_error("OBJECT_EXPECTED", "Project object expected")})
    errors: dict[str, JSON] = {}
    for name in ("public_name", "public_description", "task_spec"):
        if body.get(name) is None:
            errors[name] = field_error("VALUE_REQUIRED", _REQUIRED)
    spec = body.get("task_spec")
    if spec is not None and not isinstance(spec, dict):
        errors["task_spec"] = field_error("OBJECT_EXPECTED", "Object expected")
    elif isinstance(spec, dict):
        for name in ("input_spec", "output_spec"):
            if not isinstance(spec.get(name), dict):
                errors[f"task_spec.{name}"] = field_error("VALUE_REQUIRED", _REQUIRED)
    if errors:
        raise validation_error(errors)
    form = {k: copy.deepcopy(v) for k, v in body.items() if k not in _READ_ONLY}
    form.setdefault("assignments_issuing_type", "AUTOMATED")
    return form


def _project(state: EmulatorState, project_id: str) -> JSON:
    state.advance()
    project = state.projects.get(project_id)
    if project is None:
        raise not_found(f"Project {project_id}")
    return project


async def create_project(request: web.Request) -> web.Response:
    """`POST /api/v1/projects` → 201 with the stored project."""
    state = request.app[STATE_KEY]
    state.advance()
    form = validate_project(await read_json(request))
    project = state.seed_project(**form)
    return json_response(project, 201)


async def get_project(request: web.Request) -> web.Response:
    """`GET /api/v1/projects/{id}`."""
    return json_response(_project(request.app[STATE_KEY], request.match_info["project_id"]))


async def put_project(request: web.Request) -> web.Response:
    """`PUT /api/v1/projects/{id}`: replace the writable fields."""
    state = request.app[STATE_KEY]
    existing = _project(state, request.match_info["project_id"])
    form = validate_project(await read_json(request))
    updated = {**form, **{k: existing[k] for k in _READ_ONLY if k in existing}}
    state.projects[existing["id"]] = updated
    return json_response(updated)


async def list_projects(request: web.Request) -> web.Response:
    """`GET /api/v1/projects` with toloka-kit's ProjectSearchRequest filters and sort."""
    state = request.app[STATE_KEY]
    state.advance()
    return json_response(listing.page(PROJECTS_LIST, request.query, state.projects.values()))
