"""Quality control that acts: the re-execution rules of toloka-api.md §4.10, evaluated on crowd events.

Evaluated:
- `ASSIGNMENTS_ASSESSMENT` when the requester accepts or rejects an assignment (`PATCH
  /assignments/{id}`): `assessment_event` (`ACCEPT`, `ACCEPT_AFTER_REJECT`, `REJECT`) and the task's
  (or suite's) `pending_assignments_count` (SUBMITTED), `accepted_assignments_count`,
  `rejected_assignments_count` after the change. Automatic acceptance fires no event.
- `USERS_ASSESSMENT` when a performer's access to a pool is revoked: `pool_access_revoked_reason`
  (`RESTRICTION` from `PUT /user-restrictions` or the control endpoint, `SKILL_CHANGE` from the control
  endpoint) and `skill_id`; each matching rule acts once per task (or suite) the performer submitted in
  the pool and that was not rejected.
- The `CHANGE_OVERLAP` action: the overlap grows by `delta` (never below what was already issued),
  the task is done again by a performer who has not done it, and with `open_pool: true` a CLOSED pool
  opens (an ARCHIVED one stays archived).

Every other collector, condition and action is stored and returned as written but not evaluated.
Conditions of one rule are AND-ed; a count compared with a string value (`"1"`) is compared as a number.
"""

from __future__ import annotations

from typing import Any

from gateway.emulator.tasks import set_overlap
from gateway.emulator.wire import JSON
from gateway.emulator.world import World

_OPS = {
    "EQ": lambda a, b: a == b,
    "NE": lambda a, b: a != b,
    "GT": lambda a, b: a > b,
    "GTE": lambda a, b: a >= b,
    "LT": lambda a, b: a < b,
    "LTE": lambda a, b: a <= b,
}


def holds(condition: JSON, facts: JSON) -> bool:
    """Whether one `{key, operator, value}` condition holds for the facts (a missing key never holds)."""
    key = condition.get("key")
    if key not in facts:
        return False
    actual, expected = facts[key], condition.get("value")
    if isinstance(actual, int) and isinstance(expected, str):
        try:
            expected = float(expected)
        except ValueError:
            return False
    op = _OPS.get(str(condition.get("operator")))
    try:
        return op is not None and bool(op(actual, expected))
    except TypeError:
        return False


def matching_actions(pool: JSON, collector: str, facts: JSON) -> list[JSON]:
    """The actions of the pool's rules under `collector` whose conditions all hold."""
    actions: list[JSON] = []
    qc = pool.get("quality_control") or {}
    for config in qc.get("configs") or []:
        if (config.get("collector_config") or {}).get("type") != collector:
            continue
        for rule in config.get("rules") or []:
            conditions = rule.get("conditions") or []
            if conditions and all(holds(c, facts) for c in conditions):
                actions.append(rule.get("action") or {})
    return actions


def apply_action(state: World, action: JSON, unit: JSON) -> None:
    """Carry out one action for one task or suite (only CHANGE_OVERLAP acts)."""
    if action.get("type") != "CHANGE_OVERLAP" or unit.get("infinite_overlap"):
        return
    params = action.get("parameters") or {}
    delta = params.get("delta")
    if not isinstance(delta, int) or isinstance(delta, bool):
        return
    set_overlap(state, unit, max(1, int(unit["overlap"]) + delta), at_least_issued=True)
    pool = state.pools.get(unit["pool_id"])
    if params.get("open_pool") and pool is not None and pool["status"] == "CLOSED":
        pool["status"] = "OPEN"
        pool["last_started"] = state.timestamp()
        state.last_status_change[unit["pool_id"]] = "change-overlap-open"
        state.work_changed(unit["pool_id"])


def on_assessment(state: World, assignment: JSON, event: str) -> None:
    """The requester accepted or rejected an assignment."""
    crowd = state.crowd
    unit = crowd.unit(crowd.unit_id(assignment))
    pool = state.pools.get(assignment["pool_id"])
    if unit is None or pool is None:
        return
    statuses = [crowd.assignments[i]["status"] for i in crowd.unit_assignment_ids.get(unit["id"], [])]
    facts: dict[str, Any] = {
        "assessment_event": event,
        "pending_assignments_count": statuses.count("SUBMITTED"),
        "accepted_assignments_count": statuses.count("ACCEPTED"),
        "rejected_assignments_count": statuses.count("REJECTED"),
    }
    for action in matching_actions(pool, "ASSIGNMENTS_ASSESSMENT", facts):
        apply_action(state, action, unit)


def on_revocation(
    state: World, pool_id: str, user_id: str, reason: str, skill_id: str | None, *, bar: bool = True
) -> int:
    """A performer lost access to a pool (`bar`: for good, not only while a filter fails); returns how many
    tasks (or suites) were given more overlap."""
    done = state.crowd.revoke(pool_id, user_id, bar=bar)
    pool = state.pools.get(pool_id)
    if pool is None:
        return 0
    facts: JSON = {"pool_access_revoked_reason": reason}
    if skill_id is not None:
        facts["skill_id"] = skill_id
    actions = matching_actions(pool, "USERS_ASSESSMENT", facts)
    touched = 0
    for assignment in done:
        unit = state.crowd.unit(state.crowd.unit_id(assignment))
        if unit is None or not actions:
            continue
        touched += 1
        for action in actions:
            apply_action(state, action, unit)
    return touched


def pools_in_scope(state: World, scope: str, pool_id: str | None, project_id: str | None) -> list[str]:
    """The pools a restriction of `scope` (POOL, PROJECT, ALL_PROJECTS) covers."""
    if scope == "POOL":
        return [pool_id] if pool_id in state.pools else []
    if scope == "PROJECT":
        return [p for p, pool in state.pools.items() if str(pool.get("project_id")) == str(project_id)]
    return list(state.pools)


def passes(node: Any, skills: dict[str, float]) -> bool:
    """Whether a performer with `skills` (skill id → value) passes a pool filter tree (only its `skill`
    conditions are evaluated; a missing skill matches only `EQ null`)."""
    if not isinstance(node, dict):
        return True
    if "and" in node:
        return all(passes(child, skills) for child in node["and"] or [])
    if "or" in node:
        children = node["or"] or []
        return not children or any(passes(child, skills) for child in children)
    if node.get("category") != "skill":
        return True
    key = str(node.get("key"))
    return holds(
        {"key": key, "operator": node.get("operator"), "value": node.get("value")}, {key: skills.get(key)}
    )


def skill_keys(node: Any) -> set[str]:
    """The skill ids a filter tree mentions."""
    if not isinstance(node, dict):
        return set()
    children = (node.get("and") or []) + (node.get("or") or [])
    keys = {str(node["key"])} if node.get("category") == "skill" else set()
    return keys.union(*(skill_keys(child) for child in children))
