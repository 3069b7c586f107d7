"""Task validation and task views for `POST /api/v1/tasks`."""

from __future__ import annotations

import functools
from typing import Any

import orjson

from gateway.emulator.wire import JSON, field_error, validation_error
from gateway.emulator.world import World

MAX_SYNC_ITEMS = 5000
MAX_INPUT_VALUES_BYTES = 1_048_576
MAX_OVERLAP = 30000
# Fields of a task view; other keys (e.g. toloka-kit's `__item_idx`) are echoed in the log only.
TASK_FIELDS = (
    "pool_id",
    "input_values",
    "known_solutions",
    "message_on_unknown_solution",
    "baseline_solutions",
    "overlap",
    "infinite_overlap",
    "reserved_for",
    "unavailable_for",
    "localization_config",
    "traits_all_of",
    "traits_any_of",
    "traits_none_of_any",
    "origin_task_id",
)
_REQUIRED = "Value must be present and not equal to null"
_LIST_FIELDS = (
    "known_solutions",
    "baseline_solutions",
    "reserved_for",
    "unavailable_for",
    "traits_all_of",
    "traits_any_of",
    "traits_none_of_any",
)


_LIST_FIELD_SET = frozenset(_LIST_FIELDS)
_INT = int  # `type(x) is _INT`: a plain int, never a bool


def input_values_size(items: list[Any]) -> int:
    """Total size of all `input_values`, measured as compact JSON (orjson) bytes: one array of them
    all, less its brackets and commas (one serialisation, not one per task)."""
    values = [v for item in items if isinstance(item, dict) and (v := item.get("input_values")) is not None]
    return len(orjson.dumps(values)) - 1 - len(values) if values else 0


def validate_task(
    item: Any, pools: dict[str, JSON], allow_defaults: bool
) -> tuple[dict[str, JSON], int | None]:
    """Validate one task: `(field-path errors, resolved overlap or None for infinite overlap)`."""
    if not isinstance(item, dict):
        return {"": field_error("OBJECT_EXPECTED", "Task must be a JSON object")}, None
    errors: dict[str, JSON] = {}
    pool_id = item.get("pool_id")
    pool = pools.get(pool_id) if type(pool_id) is str else None
    if pool is None or pool["status"] == "ARCHIVED":  # the common case costs one lookup
        pool = check_pool(pool_id, pools, errors)
    values = item.get("input_values")
    if values is None or values == {}:
        errors["input_values"] = field_error("VALUE_REQUIRED", _REQUIRED)
    elif not isinstance(values, dict):
        errors["input_values"] = field_error("OBJECT_EXPECTED", "Object expected")
    if not _LIST_FIELD_SET.isdisjoint(item):
        for name in _LIST_FIELDS:
            if item.get(name) is not None and not isinstance(item[name], list):
                errors[name] = field_error("ARRAY_EXPECTED", "Array expected")
    overlap, infinite = item.get("overlap"), item.get("infinite_overlap")
    if type(overlap) is _INT and 0 < overlap <= MAX_OVERLAP and (infinite is None or infinite is False):
        return errors, overlap  # what check_overlap answers for a valid overlap, without the call
    return errors, check_overlap(item, pool, allow_defaults, errors, "default_overlap_for_new_tasks")


def store_tasks(state: World, valid: list[tuple[JSON, int | None]]) -> list[JSON]:
    """Store validated tasks (each with its resolved overlap) in order; their views.

    The crowd hears of each pool once, after its tasks are stored (it looks for work later, at
    the pickup delay, so once is the same as once per task).
    """
    created = state.timestamp()
    new_id = state.new_task_id
    views: list[JSON] = []
    shape: Any = None
    fields: tuple[str, ...] = ()
    for item, overlap in valid:
        if item.keys() != shape:  # the tasks of a batch share a few shapes; a view's fields follow it
            shape, fields = item.keys(), _view_fields(tuple(item))
        views.append(task_view(item, new_id(str(item["pool_id"])), created, overlap, fields))
    state.store_tasks(views)
    for pool_id in dict.fromkeys(view["pool_id"] for view in views):
        state.work_changed(pool_id)
    return views


def check_pool(pool_id: Any, pools: dict[str, JSON], errors: dict[str, JSON]) -> JSON | None:
    if pool_id is None:
        errors["pool_id"] = field_error("VALUE_REQUIRED", _REQUIRED)
        return None
    if not isinstance(pool_id, str | int) or isinstance(pool_id, bool):
        errors["pool_id"] = field_error("STRING_EXPECTED", "String expected")
        return None
    pool = pools.get(str(pool_id))
    if pool is None:
        errors["pool_id"] = field_error("ENTITY_DOES_NOT_EXIST", f"Pool {pool_id} does not exist")
        return None
    if pool["status"] == "ARCHIVED":
        errors["pool_id"] = field_error("VALUE_NOT_ALLOWED", f"Pool {pool_id} is archived")
    return pool


def check_overlap(
    item: JSON, pool: JSON | None, allow_defaults: bool, errors: dict[str, JSON], default_key: str
) -> int | None:
    infinite = item.get("infinite_overlap")
    if infinite is not None and not isinstance(infinite, bool):
        errors["infinite_overlap"] = field_error("BOOLEAN_EXPECTED", "Boolean expected")
        return None
    overlap = item.get("overlap")
    if infinite:
        return None
    if overlap is None:
        default = ((pool or {}).get("defaults") or {}).get(default_key)
        if allow_defaults and default is not None:
            return int(default)
        if pool is not None:
            errors["overlap"] = field_error("VALUE_REQUIRED", _REQUIRED)
        return None
    if not isinstance(overlap, int) or isinstance(overlap, bool):
        errors["overlap"] = field_error("INTEGER_EXPECTED", "Integer expected")
    elif overlap < 1:
        errors["overlap"] = field_error("VALUE_LESS_THAN_MIN", "Value must be at least 1")
    elif overlap > MAX_OVERLAP:
        errors["overlap"] = field_error("VALUE_GREATER_THAN_MAX", f"Value must be at most {MAX_OVERLAP}")
    else:
        return overlap
    return None


def task_view(
    item: JSON, task_id: str, created: str, overlap: int | None, fields: tuple[str, ...] | None = None
) -> JSON:
    """The stored task (TaskViewV1): known request fields plus `id`, `created`, `remaining_overlap`
    (`fields`: the TASK_FIELDS the item has, in order, when the caller knows them)."""
    view: JSON = {"id": task_id}
    for name in _view_fields(tuple(item)) if fields is None else fields:
        view[name] = item[name]
    view["pool_id"] = str(item["pool_id"])
    if overlap is None:
        view["infinite_overlap"] = True
        view["overlap"] = None
    else:
        view["overlap"] = overlap
        view["infinite_overlap"] = False
        view["remaining_overlap"] = overlap
    view["created"] = created
    return view


@functools.lru_cache(maxsize=256)
def _view_fields(keys: tuple[str, ...]) -> tuple[str, ...]:
    """The TASK_FIELDS among `keys`, in TASK_FIELDS order (the tasks of a batch share a few shapes)."""
    return tuple(name for name in TASK_FIELDS if name in keys)


def set_overlap(state: World, unit: JSON, overlap: int | None, *, at_least_issued: bool) -> None:
    """Change a task's (or suite's) overlap; `remaining_overlap` is what is left after the issued ones."""
    issued = state.issued.get(unit["id"], 0)
    if overlap is None:
        unit["overlap"] = None
        unit["infinite_overlap"] = True
        unit.pop("remaining_overlap", None)
    else:
        overlap = max(overlap, issued) if at_least_issued else overlap
        unit["overlap"] = overlap
        unit["infinite_overlap"] = False
        unit["remaining_overlap"] = max(0, overlap - issued)
    state.work_changed(unit["pool_id"], unit["id"])


def patch_unit(
    state: World, unit: JSON, body: JSON, extra: tuple[str, ...], *, at_least_issued: bool
) -> None:
    """Apply a PATCH to a task or suite: `overlap` / `infinite_overlap` and the `extra` fields. 400 naming
    every field that cannot be patched or is invalid, and then nothing changes."""
    allowed = {"overlap", "infinite_overlap", *extra}
    errors = {k: field_error("VALUE_NOT_ALLOWED", f"{k} cannot be patched") for k in body if k not in allowed}
    touches_overlap = "overlap" in body or "infinite_overlap" in body
    overlap = check_overlap(body, None, False, errors, "") if touches_overlap else None
    if touches_overlap and overlap is None and not body.get("infinite_overlap") and "overlap" not in errors:
        errors["overlap"] = field_error("VALUE_REQUIRED", _REQUIRED)
    if errors:
        raise validation_error(errors)
    for name in extra:
        if name in body:
            unit[name] = body[name]
    if touches_overlap:
        set_overlap(state, unit, overlap, at_least_issued=at_least_issued)
