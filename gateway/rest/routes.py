"""What a REST request is, as the limiter and the logs see it: its request kind and path template.

`classify` maps Toloka's per-method table (toloka-api.md section 6) onto request kinds, so each row
can be limited in config; any other write is `other` and any other read `read`, both counted by the
account-wide limit. The template replaces ids with `{id}`, so logs and metrics are labelled by
endpoint, never by object.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from gateway import request_kinds as k

API_ROOT = "/api/v1"
MAX_TEMPLATE_SEGMENTS = 6
_POOL_ACTIONS = frozenset({"open", "close", "close-for-update", "archive"})
# The words of Toloka's API paths (collections and actions); other non-id segments are `{name}`.
PATH_WORDS = frozenset(
    {
        *_POOL_ACTIONS,
        "tasks",
        "task-suites",
        "operations",
        "log",
        "pools",
        "training-pools",
        "projects",
        "clone",
        "assignments",
        "attachments",
        "download",
        "aggregated-solutions",
        "aggregate-by-pool",
        "aggregate-by-task",
        "user-skills",
        "skills",
        "user-bonuses",
        "user-restrictions",
        "user-metadata",
        "message-threads",
        "compose",
        "reply",
        "folders",
        "add-to-folders",
        "remove-from-folders",
        "requester",
        "webhook-subscriptions",
        "test",
        "set-overlap-or-min",
        "app-projects",
        "apps",
        "app-items",
        "app-batches",
        "items",
        "batches",
        "start",
    }
)
# (method, path template under /api/v1) -> kind, for the rows of the per-method table.
_KINDS: dict[tuple[str, str], str] = {
    ("POST", "/tasks"): k.KIND_CREATE_TASKS,
    ("GET", "/tasks"): k.KIND_LIST_TASKS,
    ("POST", "/task-suites"): k.KIND_CREATE_TASK_SUITES,
    ("GET", "/operations/{id}"): k.KIND_GET_OPERATION,
    ("GET", "/operations/{id}/log"): k.KIND_GET_OPERATION_LOG,
    ("GET", "/pools/{id}"): k.KIND_GET_POOL,
    ("PUT", "/pools/{id}"): k.KIND_UPDATE_POOL,
    ("PATCH", "/pools/{id}"): k.KIND_UPDATE_POOL,
    ("POST", "/pools"): k.KIND_CREATE_POOL,
    ("POST", "/training-pools"): k.KIND_CREATE_POOL,
    ("POST", "/projects"): k.KIND_CREATE_PROJECT,
    ("POST", "/pools/{id}/clone"): k.KIND_CLONE_POOL,
    ("POST", "/training-pools/{id}/clone"): k.KIND_CLONE_POOL,
    ("PUT", "/user-skills"): k.KIND_SET_USER_SKILL,
    ("POST", "/skills"): k.KIND_CREATE_SKILL,
    ("POST", "/user-bonuses"): k.KIND_ISSUE_BONUS,
    ("POST", "/message-threads/compose"): k.KIND_MESSAGE,
}


@dataclass(frozen=True)
class Route:
    """A REST request's kind, its path template (from /api/v1 on) and what it costs."""

    kind: str
    template: str
    cost: int = 1


def _segment(part: str) -> str:
    if any(c.isdigit() for c in part):
        return "{id}"
    return part if part in PATH_WORDS else "{name}"


@functools.lru_cache(maxsize=4096)  # a pure function of the path; polled paths repeat
def template_of(tail: str) -> str:
    """`/pools/17/open` -> `/pools/{id}/open`: a segment with a digit in it is an id, and a word
    Toloka's API does not use is `{name}`, so a label never takes a caller's arbitrary text."""
    parts = [p for p in tail.split("/") if p][:MAX_TEMPLATE_SEGMENTS]
    return "/" + "/".join(_segment(p) for p in parts)


def template_of_path(path: str) -> str:
    """The template a log line, the metrics and a span name a request by (one label outside the API)."""
    if not path.startswith(API_ROOT + "/"):
        return "(not an API path)"
    return API_ROOT + template_of(path[len(API_ROOT) :])


def classify(method: str, tail: str, body: Any) -> Route:
    """The route of `method` on `tail` (the path under /api/v1) with its parsed JSON `body`."""
    template = template_of(tail)
    kind = _KINDS.get((method, template))
    if kind is None:
        parts = template.split("/")
        if method == "POST" and template.startswith("/pools/{id}/") and parts[-1] in _POOL_ACTIONS:
            kind = k.KIND_POOL_ACTION
        elif method == "POST" and template.startswith("/aggregated-solutions/"):
            kind = k.KIND_AGGREGATE
        else:
            kind = k.KIND_READ if method == "GET" else k.KIND_OTHER
    creates = (k.KIND_CREATE_TASKS, k.KIND_CREATE_TASK_SUITES)
    cost = len(body) if kind in creates and isinstance(body, list) else 1
    return Route(kind, API_ROOT + template, max(1, cost))


def pools_named(tail: str, query: dict[str, str], body: Any) -> set[str]:
    """The pools a request names: in its path, its `pool_id` query, or its tasks' / suites' `pool_id`."""
    pools: set[str] = set()
    parts = [p for p in tail.split("/") if p]
    if len(parts) >= 2 and parts[0] in ("pools", "training-pools"):
        pools.add(parts[1])
    if query.get("pool_id"):
        pools.add(query["pool_id"])
    items = body if isinstance(body, list) else [body]
    for item in items:
        if isinstance(item, dict) and item.get("pool_id") is not None:
            pools.add(str(item["pool_id"]))
    return pools
