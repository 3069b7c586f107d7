"""Re-execution ("rework") rules on the wire: typed `ReworkRule` <-> Toloka's rule and config JSON.

A re-execution rule is a rule of a `USERS_ASSESSMENT` or `ASSIGNMENTS_ASSESSMENT` config whose
action is `CHANGE_OVERLAP` (toloka-api.md §4.10). This module owns that JSON shape both ways
(`rule_to_json`, `rules_to_configs`; `is_rework_rule`, `rule_from_json`) and the rules' normalised
form. A rework rule the typed model cannot express (an `NE` operator, an unknown key, an extra
action parameter, ...) is refused with `UnsupportedRule`, whose message says why.

Rules compare in a normalised form: order-insensitive, condition order-insensitive, values
normalised (`"1"` and `1` count as the same count, `open_pool` absent as false).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.translate.ids import is_toloka_id

USERS_ASSESSMENT = "USERS_ASSESSMENT"
ASSIGNMENTS_ASSESSMENT = "ASSIGNMENTS_ASSESSMENT"
REWORK_COLLECTORS = (USERS_ASSESSMENT, ASSIGNMENTS_ASSESSMENT)
CHANGE_OVERLAP = "CHANGE_OVERLAP"

REVOKED_REASON = "pool_access_revoked_reason"
SKILL_ID = "skill_id"
ASSESSMENT_EVENT = "assessment_event"
SKILL_CHANGE = "SKILL_CHANGE"
RESTRICTION = "RESTRICTION"

EVENTS = {
    pb.ASSESSMENT_EVENT_ACCEPT: "ACCEPT",
    pb.ASSESSMENT_EVENT_ACCEPT_AFTER_REJECT: "ACCEPT_AFTER_REJECT",
    pb.ASSESSMENT_EVENT_REJECT: "REJECT",
}
COUNT_KEYS = {
    pb.CONDITION_KEY_PENDING_ASSIGNMENTS_COUNT: "pending_assignments_count",
    pb.CONDITION_KEY_ACCEPTED_ASSIGNMENTS_COUNT: "accepted_assignments_count",
    pb.CONDITION_KEY_REJECTED_ASSIGNMENTS_COUNT: "rejected_assignments_count",
}
OPERATORS = {
    pb.COMPARISON_OPERATOR_EQ: "EQ",
    pb.COMPARISON_OPERATOR_NE: "NE",
    pb.COMPARISON_OPERATOR_GT: "GT",
    pb.COMPARISON_OPERATOR_GTE: "GTE",
    pb.COMPARISON_OPERATOR_LT: "LT",
    pb.COMPARISON_OPERATOR_LTE: "LTE",
}
_EVENT_OF = {v: k for k, v in EVENTS.items()}
_COUNT_KEY_OF = {v: k for k, v in COUNT_KEYS.items()}
_OPERATOR_OF = {v: k for k, v in OPERATORS.items()}

_DECIMAL = re.compile(r"[0-9]{1,18}")  # used with fullmatch: no trailing newline
_INT32 = (-(2**31), 2**31 - 1)

JSON = dict[str, Any]
RuleKey = bytes


class UnsupportedRule(ValueError):
    """A rework rule on the pool that the typed model cannot express; the message says why."""


# ---- typed -> JSON ---------------------------------------------------------------------------


def collector_of(rule: pb.ReworkRule) -> str:
    """The Toloka collector type a typed rule belongs to."""
    return ASSIGNMENTS_ASSESSMENT if rule.WhichOneof("trigger") == "assessment" else USERS_ASSESSMENT


def rule_to_json(rule: pb.ReworkRule) -> JSON:
    """One typed rule as Toloka's rule JSON (`conditions` + `action`), trigger conditions first."""
    trigger = rule.WhichOneof("trigger")
    conditions: list[JSON] = []
    if trigger == "skill_change":
        conditions.append(_condition(REVOKED_REASON, "EQ", SKILL_CHANGE))
        if rule.skill_change.skill_id:
            conditions.append(_condition(SKILL_ID, "EQ", rule.skill_change.skill_id))
    elif trigger == "restriction":
        conditions.append(_condition(REVOKED_REASON, "EQ", RESTRICTION))
    elif trigger == "assessment":
        event = EVENTS[rule.assessment.assessment_event]
        conditions.append(_condition(ASSESSMENT_EVENT, "EQ", event))
        for c in rule.conditions:
            conditions.append(_condition(COUNT_KEYS[c.key], OPERATORS[c.operator], int(c.value)))
    else:
        raise ValueError("a rework rule needs a trigger")
    return {
        "conditions": conditions,
        "action": {"type": CHANGE_OVERLAP, "parameters": {"delta": rule.delta, "open_pool": rule.open_pool}},
    }


def rules_to_configs(rules: Sequence[pb.ReworkRule]) -> list[JSON]:
    """Typed rules as fresh `configs[]` entries: one entry per collector type, in first-use order."""
    by_collector: dict[str, list[JSON]] = {}
    for rule in rules:
        by_collector.setdefault(collector_of(rule), []).append(rule_to_json(rule))
    return [{"collector_config": {"type": t}, "rules": r} for t, r in by_collector.items()]


def _condition(key: str, operator: str, value: Any) -> JSON:
    return {"key": key, "operator": operator, "value": value}


# ---- normalised comparison -------------------------------------------------------------------


def rule_key(rule: pb.ReworkRule) -> RuleKey:
    """The rule's normalised form: collector, sorted conditions, delta, open_pool."""
    data = rule_to_json(rule)
    conditions = sorted(orjson.dumps(c, option=orjson.OPT_SORT_KEYS).decode() for c in data["conditions"])
    params = data["action"]["parameters"]
    return orjson.dumps([collector_of(rule), conditions, params["delta"], params["open_pool"]])


def same_rules(a: Sequence[pb.ReworkRule], b: Sequence[pb.ReworkRule]) -> bool:
    """True when both hold the same rules, ignoring rule and condition order."""
    return Counter(map(rule_key, a)) == Counter(map(rule_key, b))


def canonical_rules(rules: Sequence[pb.ReworkRule]) -> bytes:
    """An order-insensitive byte form of a rule set (for idempotency fingerprints)."""
    return b"\n".join(sorted(rule_key(r) for r in rules))


# ---- JSON -> typed ---------------------------------------------------------------------------


def is_rework_rule(collector_type: Any, rule: Any) -> bool:
    """True for a rule of a rework collector whose action is CHANGE_OVERLAP."""
    if collector_type not in REWORK_COLLECTORS or not isinstance(rule, dict):
        return False
    action = rule.get("action")
    return isinstance(action, dict) and action.get("type") == CHANGE_OVERLAP


def rule_from_json(collector_type: str, rule: JSON) -> pb.ReworkRule:
    """A pool's rework rule as a typed rule, or UnsupportedRule saying what cannot be expressed."""
    out = pb.ReworkRule()
    _action_from_json(rule.get("action") or {}, out)
    conditions = rule.get("conditions")
    if not isinstance(conditions, list) or not conditions:
        raise UnsupportedRule("the rule has no conditions")
    parsed = [_condition_parts(c) for c in conditions]
    if collector_type == USERS_ASSESSMENT:
        _users_trigger(parsed, out)
    else:
        _assessment_trigger(parsed, out)
    return out


def _condition_parts(c: Any) -> tuple[str, str, Any]:
    if not isinstance(c, dict) or not isinstance(c.get("key"), str) or not isinstance(c.get("operator"), str):
        raise UnsupportedRule(f"malformed condition {c!r}")
    return c["key"], c["operator"], c.get("value")


def _action_from_json(action: JSON, out: pb.ReworkRule) -> None:
    params = action.get("parameters")
    if not isinstance(params, dict):
        raise UnsupportedRule("CHANGE_OVERLAP without parameters")
    extra = set(params) - {"delta", "open_pool"}
    if extra:
        raise UnsupportedRule(f"CHANGE_OVERLAP parameters {sorted(extra)} are not supported")
    delta = _int_value(params.get("delta"))
    if delta is None or delta == 0 or not _INT32[0] <= delta <= _INT32[1]:
        raise UnsupportedRule(f"CHANGE_OVERLAP delta {params.get('delta')!r} is not a non-zero int32")
    open_pool = params.get("open_pool", False)
    if not isinstance(open_pool, bool):
        raise UnsupportedRule(f"CHANGE_OVERLAP open_pool {open_pool!r} is not a bool")
    out.delta = delta
    out.open_pool = open_pool


def _users_trigger(parsed: list[tuple[str, str, Any]], out: pb.ReworkRule) -> None:
    reasons = [p for p in parsed if p[0] == REVOKED_REASON]
    skills = [p for p in parsed if p[0] == SKILL_ID]
    others = [p for p in parsed if p[0] not in (REVOKED_REASON, SKILL_ID)]
    if others:
        raise UnsupportedRule(f"condition key {others[0][0]!r} is not supported")
    if len(reasons) != 1 or reasons[0][1] != "EQ" or reasons[0][2] not in (SKILL_CHANGE, RESTRICTION):
        raise UnsupportedRule("expected exactly one pool_access_revoked_reason EQ SKILL_CHANGE|RESTRICTION")
    if reasons[0][2] == RESTRICTION:
        if skills:
            raise UnsupportedRule("skill_id together with RESTRICTION is not supported")
        out.restriction.SetInParent()
        return
    out.skill_change.SetInParent()
    if skills:
        _, op, value = skills[0]
        skill = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
        if len(skills) != 1 or op != "EQ" or not is_toloka_id(skill):
            raise UnsupportedRule("expected at most one skill_id EQ <decimal id>")
        out.skill_change.skill_id = skill


def _assessment_trigger(parsed: list[tuple[str, str, Any]], out: pb.ReworkRule) -> None:
    events = [p for p in parsed if p[0] == ASSESSMENT_EVENT]
    if len(events) != 1 or events[0][1] != "EQ" or events[0][2] not in _EVENT_OF:
        raise UnsupportedRule("expected exactly one assessment_event EQ ACCEPT|ACCEPT_AFTER_REJECT|REJECT")
    out.assessment.assessment_event = _EVENT_OF[events[0][2]]
    for key, op, value in parsed:
        if key == ASSESSMENT_EVENT:
            continue
        number = _int_value(value)
        if key not in _COUNT_KEY_OF or op not in _OPERATOR_OF or number is None or number < 0:
            raise UnsupportedRule(f"condition {key} {op} {value!r} is not supported")
        out.conditions.add(key=_COUNT_KEY_OF[key], operator=_OPERATOR_OF[op], value=number)


def _int_value(value: Any) -> int | None:
    """An int, or a decimal string (Toloka's own examples send counts as strings); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _DECIMAL.fullmatch(value.lstrip("-")) and value.count("-") <= 1:
        return int(value)
    return None
