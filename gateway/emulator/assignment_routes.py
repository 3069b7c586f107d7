"""Assignments: `GET /api/v1/assignments` (list), `GET /api/v1/assignments/{id}`,
`PATCH /api/v1/assignments/{id}`.

- The list honours toloka-kit's AssignmentSearchRequest: `status` (comma-separated list), `task_id`,
  `task_suite_id`, `pool_id`, `user_id`, bounds on `id`, `created`, `submitted`, `accepted`,
  `rejected`, `skipped`, `expired`, and sort by any of those fields; `limit` 1..100,000.
- PATCH takes `{"status": "ACCEPTED" | "REJECTED", "public_comment": ...}`. SUBMITTED → ACCEPTED or
  REJECTED; REJECTED → ACCEPTED (the `ACCEPT_AFTER_REJECT` event). A reject needs a non-empty
  `public_comment` (400 otherwise). Any other change → 409 `INAPPROPRIATE_STATUS`. The pool's
  ASSIGNMENTS_ASSESSMENT rules are evaluated on the change (see `quality`).
"""

from __future__ import annotations

from aiohttp import web

from gateway.emulator import listing
from gateway.emulator.batch_create import read_object
from gateway.emulator.listing import ListSpec, equals
from gateway.emulator.quality import on_assessment
from gateway.emulator.state import STATE_KEY, EmulatorState
from gateway.emulator.wire import JSON, ApiError, field_error, json_response, not_found, validation_error

_DATES = ("created", "submitted", "accepted", "rejected", "skipped", "expired")
ASSIGNMENTS_LIST = ListSpec(
    "/api/v1/assignments",
    filters={
        "status": equals("status"),
        "pool_id": equals("pool_id"),
        "user_id": equals("user_id"),
        "task_suite_id": equals("task_suite_id"),
        "task_id": lambda a, value: any(t["id"] == value for t in a["tasks"]),
    },
    ranges={"id": "id", **dict.fromkeys(_DATES, "date")},
    sorts=("id", *_DATES),
    max_limit=100_000,
)


def _assignment(state: EmulatorState, assignment_id: str) -> JSON:
    state.advance()
    assignment = state.crowd.assignments.get(assignment_id)
    if assignment is None:
        raise not_found(f"Assignment {assignment_id}")
    return assignment


async def list_assignments(request: web.Request) -> web.Response:
    """`GET /api/v1/assignments`."""
    state = request.app[STATE_KEY]
    state.advance()
    crowd = state.crowd
    pool_id = request.query.get("pool_id")
    if pool_id is not None:
        ids = crowd.pool_assignment_ids.get(pool_id, [])
        lookup = crowd.assignments.__getitem__
        return json_response(listing.page_in_id_order(ASSIGNMENTS_LIST, request.query, ids, lookup))
    return json_response(listing.page(ASSIGNMENTS_LIST, request.query, crowd.assignments.values()))


async def get_assignment(request: web.Request) -> web.Response:
    """`GET /api/v1/assignments/{id}`."""
    return json_response(_assignment(request.app[STATE_KEY], request.match_info["assignment_id"]))


def _inappropriate(status: str) -> ApiError:
    return ApiError(
        409,
        "INAPPROPRIATE_STATUS",
        f"This or related resource is in inappropriate status ({status}), operation is not allowed",
        {"appropriate_statuses": ["SUBMITTED", "REJECTED"] if status != "REJECTED" else ["SUBMITTED"]},
    )


async def patch_assignment(request: web.Request) -> web.Response:
    """`PATCH /api/v1/assignments/{id}`: accept or reject."""
    state = request.app[STATE_KEY]
    assignment = _assignment(state, request.match_info["assignment_id"])
    body = await read_object(request)
    target = body.get("status")
    comment = body.get("public_comment")
    if target not in ("ACCEPTED", "REJECTED"):
        raise validation_error(
            {"status": field_error("VALUE_NOT_ALLOWED", "status must be ACCEPTED or REJECTED")}
        )
    if target == "REJECTED" and not (isinstance(comment, str) and comment.strip()):
        raise validation_error(
            {"public_comment": field_error("VALUE_REQUIRED", "A reject needs a public_comment")}
        )
    current = assignment["status"]
    if current not in ("SUBMITTED", "REJECTED") or current == target:
        raise _inappropriate(current)
    event = "REJECT" if target == "REJECTED" else "ACCEPT_AFTER_REJECT" if current == "REJECTED" else "ACCEPT"
    assignment["status"] = target
    assignment[target.lower()] = state.timestamp()
    if comment is not None:
        assignment["public_comment"] = comment
    on_assessment(state, assignment, event)
    return json_response(assignment)
