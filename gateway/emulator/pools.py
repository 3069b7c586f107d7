"""Pool documents: defaults for seeding, read-only fields, quality-control validation, overlap signature."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import orjson

from gateway.emulator.wire import JSON, field_error, iso

READ_ONLY_FIELDS = frozenset(
    {"id", "owner", "status", "last_close_reason", "created", "last_started", "last_stopped", "type"}
)
REQUIRED_FIELDS = (
    "project_id",
    "private_name",
    "may_contain_adult_content",
    "will_expire",
    "reward_per_assignment",
    "assignment_max_duration_seconds",
    "defaults",
)
OPERATORS = frozenset({"EQ", "NE", "GT", "GTE", "LT", "LTE"})
_YEAR_S = 365 * 24 * 3600.0


def default_pool(pool_id: str, now: float) -> JSON:
    """A pool with a sensible value for every writable field of toloka-api.md §4.1 (dynamic_pricing_config
    and dynamic_overlap_config are left out: absent means "off")."""
    return {
        "id": pool_id,
        "project_id": "1",
        "private_name": f"Pool {pool_id}",
        "private_comment": "",
        "public_description": f"Emulated pool {pool_id}",
        "public_instructions": "",
        "may_contain_adult_content": False,
        "will_expire": iso(now + _YEAR_S),
        "reward_per_assignment": 0.01,
        "assignment_max_duration_seconds": 600,
        "auto_close_after_complete_delay_seconds": 0,
        "auto_accept_solutions": True,
        "auto_accept_period_day": 7,
        "assignments_issuing_config": {"issue_task_suites_in_creation_order": False},
        "priority": 0,
        "defaults": {"default_overlap_for_new_task_suites": 1, "default_overlap_for_new_tasks": 1},
        "filter": {
            "and": [{"or": [{"category": "profile", "key": "languages", "operator": "IN", "value": "EN"}]}]
        },
        "quality_control": {"configs": []},
        "speed_quality_balance": {"type": "TOP_PERCENTAGE_BY_QUALITY", "percent": 90},
        "mixer_config": {"real_tasks_count": 1, "golden_tasks_count": 0, "training_tasks_count": 0},
        "training_config": {"training_skill_ttl_days": 0},
        "metadata": {},
        "owner": {"id": "emulated-requester", "myself": True, "company_id": "1"},
        "type": "REGULAR",
        "status": "CLOSED",
        "created": iso(now),
    }


def default_project(project_id: str, created: str) -> JSON:
    """An ACTIVE project with a one-field task spec: input `image` (url), output `label` (string)."""
    return {
        "id": project_id,
        "public_name": f"Project {project_id}",
        "public_description": f"Emulated project {project_id}",
        "public_instructions": "",
        "private_comment": "",
        "task_spec": {
            "input_spec": {"image": {"type": "url", "required": True, "hidden": False}},
            "output_spec": {
                "label": {
                    "type": "string",
                    "required": True,
                    "hidden": False,
                    "allowed_values": ["cat", "dog"],
                }
            },
            "view_spec": {"type": "tb", "config": "{}"},
        },
        "assignments_issuing_type": "AUTOMATED",
        "status": "ACTIVE",
        "created": created,
        "owner": {"id": "emulated-requester", "myself": True, "company_id": "1"},
    }


def assign_collector_uuids(pool: JSON) -> None:
    """Give every quality-control config without a `collector_config.uuid` a fresh uuid4 (in place)."""
    qc = pool.get("quality_control")
    if not isinstance(qc, dict):
        return
    for config in qc.get("configs") or []:
        collector = config.get("collector_config") if isinstance(config, dict) else None
        if isinstance(collector, dict) and not collector.get("uuid"):
            collector["uuid"] = str(uuid.uuid4())


def replaced_pool(existing: JSON, body: JSON) -> JSON:
    """The pool after a PUT: the body's writable fields plus the existing read-only fields."""
    new = {k: copy.deepcopy(v) for k, v in body.items() if k not in READ_ONLY_FIELDS}
    for key in READ_ONLY_FIELDS:
        if key in existing:
            new[key] = existing[key]
    assign_collector_uuids(new)
    return new


def validate_pool_body(body: JSON) -> dict[str, JSON]:
    """Field-path errors of a PUT body: required fields, priority range and quality_control shape."""
    errors: dict[str, JSON] = {}
    for name in REQUIRED_FIELDS:
        if body.get(name) is None:
            errors[name] = field_error("VALUE_REQUIRED", "Value must be present and not equal to null")
    priority = body.get("priority")
    if priority is not None and (not _is_int(priority) or not 0 <= priority <= 100):
        errors["priority"] = field_error("VALUE_NOT_ALLOWED", "Priority must be an integer in 0..100")
    if "quality_control" in body and body["quality_control"] is not None:
        _validate_quality_control(body["quality_control"], errors)
    return errors


def _validate_quality_control(qc: Any, errors: dict[str, JSON]) -> None:
    if not isinstance(qc, dict):
        errors["quality_control"] = field_error("OBJECT_EXPECTED", "Object expected")
        return
    configs = qc.get("configs", [])
    if configs is None:
        return
    if not isinstance(configs, list):
        errors["quality_control.configs"] = field_error("ARRAY_EXPECTED", "Array expected")
        return
    for i, config in enumerate(configs):
        _validate_config(config, f"quality_control.configs[{i}]", errors)


def _validate_config(config: Any, path: str, errors: dict[str, JSON]) -> None:
    if not isinstance(config, dict):
        errors[path] = field_error("OBJECT_EXPECTED", "Object expected")
        return
    collector = config.get("collector_config")
    if not isinstance(collector, dict):
        errors[f"{path}.collector_config"] = field_error("VALUE_REQUIRED", "Object expected")
    elif not isinstance(collector.get("type"), str) or not collector["type"]:
        errors[f"{path}.collector_config.type"] = field_error("VALUE_REQUIRED", "Collector type expected")
    rules = config.get("rules")
    if not isinstance(rules, list):
        errors[f"{path}.rules"] = field_error("ARRAY_EXPECTED", "Array expected")
        return
    for j, rule in enumerate(rules):
        _validate_rule(rule, f"{path}.rules[{j}]", errors)


def _validate_rule(rule: Any, path: str, errors: dict[str, JSON]) -> None:
    if not isinstance(rule, dict):
        errors[path] = field_error("OBJECT_EXPECTED", "Object expected")
        return
    conditions = rule.get("conditions")
    if not isinstance(conditions, list) or not conditions:
        errors[f"{path}.conditions"] = field_error("VALUE_REQUIRED", "Non-empty array expected")
    else:
        for k, cond in enumerate(conditions):
            _validate_condition(cond, f"{path}.conditions[{k}]", errors)
    action = rule.get("action")
    if not isinstance(action, dict):
        errors[f"{path}.action"] = field_error("VALUE_REQUIRED", "Object expected")
        return
    if not isinstance(action.get("type"), str) or not action["type"]:
        errors[f"{path}.action.type"] = field_error("VALUE_REQUIRED", "Action type expected")
    params = action.get("parameters")
    if params is not None and not isinstance(params, dict):
        errors[f"{path}.action.parameters"] = field_error("OBJECT_EXPECTED", "Object expected")
    if action.get("type") == "CHANGE_OVERLAP":
        delta = (params or {}).get("delta")
        if not _is_int(delta):
            errors[f"{path}.action.parameters.delta"] = field_error("INTEGER_EXPECTED", "Integer expected")


def _validate_condition(cond: Any, path: str, errors: dict[str, JSON]) -> None:
    if not isinstance(cond, dict):
        errors[path] = field_error("OBJECT_EXPECTED", "Object expected")
        return
    if not isinstance(cond.get("key"), str) or not cond["key"]:
        errors[f"{path}.key"] = field_error("VALUE_REQUIRED", "Condition key expected")
    if cond.get("operator") not in OPERATORS:
        errors[f"{path}.operator"] = field_error("UNKNOWN_ENUM_VALUE", "Unknown operator")
    if cond.get("value") is None:
        errors[f"{path}.value"] = field_error("VALUE_REQUIRED", "Condition value expected")


def overlap_signature(pool: JSON) -> bytes:
    """A canonical fingerprint of the pool's overlap settings: default overlaps and CHANGE_OVERLAP rules.

    Two pools with different signatures differ in "overlap parameters" for the 10-per-hour limit.
    """
    defaults = pool.get("defaults") or {}
    rules: list[Any] = []
    qc = pool.get("quality_control") or {}
    for config in qc.get("configs") or [] if isinstance(qc, dict) else []:
        if not isinstance(config, dict):
            continue
        collector_type = (config.get("collector_config") or {}).get("type")
        for rule in config.get("rules") or []:
            if isinstance(rule, dict) and (rule.get("action") or {}).get("type") == "CHANGE_OVERLAP":
                rules.append([collector_type, rule.get("conditions"), rule["action"].get("parameters")])
    rules.sort(key=lambda r: orjson.dumps(r, option=orjson.OPT_SORT_KEYS))
    return orjson.dumps(
        [
            defaults.get("default_overlap_for_new_tasks") if isinstance(defaults, dict) else None,
            defaults.get("default_overlap_for_new_task_suites") if isinstance(defaults, dict) else None,
            rules,
        ],
        option=orjson.OPT_SORT_KEYS,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
