"""Re-execution ("rework") rules: typed `ReworkRule` <-> a pool's `quality_control.configs` JSON.

A re-execution rule is a rule of a `USERS_ASSESSMENT` or `ASSIGNMENTS_ASSESSMENT` config whose
action is `CHANGE_OVERLAP` (toloka-api.md §4.10). Every other config and rule is "foreign" here:
it is carried through a merge byte for byte, and so is the `collector_config` (with its
server-assigned `uuid`) of a rework config that keeps any rule.

A rule of a rework collector with a `CHANGE_OVERLAP` action that the typed model cannot express
(an `NE` operator, an unknown key, an extra action parameter, ...) is *unsupported*: reading and
writing such a pool is refused (see `PoolRules.unsupported`), because neither "keep it" (the
pool would not have exactly the requested rules) nor "drop it" (silent loss of a rule the
caller could not even see) is honest.

Rules compare in a normalised form: order-insensitive, condition order-insensitive, values
normalised (`"1"` and `1` count as the same count, `open_pool` absent as false).
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.errors import FieldViolation, ViolationList
from gateway.translate.ids import check_toloka_id, is_toloka_id

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
# Size bounds of a SetReworkRules request (its only text is ids, bounded by their format): a pool
# holds a handful of rework rules, and each rule is written back to Toloka with the whole pool.
MAX_REWORK_RULES = 100
MAX_CONDITIONS_PER_RULE = 20
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


# ---- request validation ----------------------------------------------------------------------


def check_rules(rules: Sequence[pb.ReworkRule], problems: ViolationList, prefix: str = "rules") -> None:
    """Record every violation of the typed rules: count, trigger, delta, skill id, enums, duplicates."""
    if len(rules) > MAX_REWORK_RULES:
        problems.add(prefix, f"{len(rules)} rules; at most {MAX_REWORK_RULES} per request", "TOO_MANY")
        return
    seen: dict[RuleKey, int] = {}
    for i, rule in enumerate(rules):
        path = f"{prefix}[{i}]"
        before = len(problems.items)
        _check_rule(rule, path, problems)
        if len(problems.items) > before:
            continue
        key = rule_key(rule)
        if key in seen:
            problems.add(path, f"duplicates {prefix}[{seen[key]}]", "DUPLICATE_RULE")
        else:
            seen[key] = i


def _check_rule(rule: pb.ReworkRule, path: str, problems: ViolationList) -> None:
    trigger = rule.WhichOneof("trigger")
    if trigger is None:
        problems.add(
            f"{path}.trigger", "one of skill_change, restriction, assessment is required", "REQUIRED"
        )
    if rule.delta == 0:
        problems.add(f"{path}.delta", "must not be 0", "OUT_OF_RANGE")
    if trigger == "skill_change":
        check_toloka_id(
            rule.skill_change.skill_id, problems, f"{path}.skill_change.skill_id", "Toloka skill id"
        )
    if trigger == "assessment":
        if rule.assessment.assessment_event not in EVENTS:
            problems.add(
                f"{path}.assessment.assessment_event",
                "must be ACCEPT, ACCEPT_AFTER_REJECT or REJECT",
                "UNSPECIFIED" if rule.assessment.assessment_event == 0 else "UNKNOWN_ENUM_VALUE",
            )
        if len(rule.conditions) > MAX_CONDITIONS_PER_RULE:
            problems.add(
                f"{path}.conditions",
                f"{len(rule.conditions)} conditions; at most {MAX_CONDITIONS_PER_RULE} per rule",
                "TOO_MANY",
            )
            return
        for k, c in enumerate(rule.conditions):
            _check_condition(c, f"{path}.conditions[{k}]", problems)
    elif rule.conditions:
        problems.add(
            f"{path}.conditions", "only the assessment trigger takes extra conditions", "NOT_ALLOWED"
        )


def _check_condition(c: pb.ReworkCondition, path: str, problems: ViolationList) -> None:
    if c.key not in COUNT_KEYS:
        problems.add(
            f"{path}.key", "must name a counter", "UNSPECIFIED" if c.key == 0 else "UNKNOWN_ENUM_VALUE"
        )
    if c.operator not in OPERATORS:
        reason = "UNSPECIFIED" if c.operator == 0 else "UNKNOWN_ENUM_VALUE"
        problems.add(f"{path}.operator", "must be EQ, NE, GT, GTE, LT or LTE", reason)
    if c.value < 0:
        problems.add(f"{path}.value", "must not be negative", "OUT_OF_RANGE")


def assessment_rule_violations(rules: Sequence[pb.ReworkRule], prefix: str = "rules") -> list[FieldViolation]:
    """One violation per assessment rule, for a pool with automatic acceptance (they would never fire)."""
    return [
        FieldViolation(
            f"{prefix}[{i}]",
            "assessment rules need non-automatic acceptance (the pool has auto_accept_solutions true)",
            "AUTO_ACCEPT_POOL",
        )
        for i, rule in enumerate(rules)
        if rule.WhichOneof("trigger") == "assessment"
    ]


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


# ---- the pool ---------------------------------------------------------------------------------


@dataclass
class PoolRules:
    """A pool's rework rules, typed, and the rework rules it holds that cannot be typed."""

    rules: list[pb.ReworkRule] = field(default_factory=list)
    unsupported: list[FieldViolation] = field(default_factory=list)


def _configs(pool: JSON) -> list[Any]:
    qc = pool.get("quality_control")
    configs = qc.get("configs") if isinstance(qc, dict) else None
    return configs if isinstance(configs, list) else []


def _collector_type(config: Any) -> Any:
    collector = config.get("collector_config") if isinstance(config, dict) else None
    return collector.get("type") if isinstance(collector, dict) else None


def _rules_of(config: Any) -> list[Any]:
    rules = config.get("rules") if isinstance(config, dict) else None
    return rules if isinstance(rules, list) else []


def parse_pool_rules(pool: JSON, prefix: str = "pool.quality_control.configs") -> PoolRules:
    """The pool's rework rules in config order, plus a violation per rule that cannot be typed."""
    out = PoolRules()
    for i, config in enumerate(_configs(pool)):
        collector_type = _collector_type(config)
        for j, rule in enumerate(_rules_of(config)):
            if not is_rework_rule(collector_type, rule):
                continue
            try:
                out.rules.append(rule_from_json(collector_type, rule))
            except UnsupportedRule as e:
                out.unsupported.append(
                    FieldViolation(f"{prefix}[{i}].rules[{j}]", str(e), "UNSUPPORTED_RULE")
                )
    return out


def merged_pool(pool: JSON, rules: Sequence[pb.ReworkRule]) -> JSON:
    """A copy of `pool` whose rework rules are exactly `rules`; everything else is left as it was.

    Rules of one collector type end up in one config: the first config of that type that held a
    rework rule (else the first of that type, else a new one at the end). A kept rule keeps its
    JSON and place; a new rule is appended to that config. A rework config left without any rule
    is dropped. The pool must hold no unsupported rework rule (see `parse_pool_rules`).
    """
    new = copy.deepcopy(pool)
    configs = _configs(new)
    wanted: dict[str, list[tuple[RuleKey, JSON]]] = {t: [] for t in REWORK_COLLECTORS}
    for rule in rules:
        wanted[collector_of(rule)].append((rule_key(rule), rule_to_json(rule)))
    hosts = _host_configs(configs)
    out: list[Any] = []
    for i, config in enumerate(configs):
        collector_type = _collector_type(config)
        if collector_type not in REWORK_COLLECTORS:
            out.append(config)
            continue
        is_host = hosts.get(collector_type) == i
        kept, removed = _keep_rules(collector_type, config, wanted[collector_type] if is_host else [])
        if is_host:
            present = {
                rule_key(rule_from_json(collector_type, r)) for r in kept if is_rework_rule(collector_type, r)
            }
            kept.extend(j for k, j in wanted[collector_type] if k not in present)
        if removed and not kept:
            continue
        config["rules"] = kept
        out.append(config)
    for collector_type, items in wanted.items():
        if items and collector_type not in hosts:
            out.append({"collector_config": {"type": collector_type}, "rules": [j for _, j in items]})
    qc = new.get("quality_control")
    if not isinstance(qc, dict):
        qc = new["quality_control"] = {}
    qc["configs"] = out
    return new


def _host_configs(configs: list[Any]) -> dict[str, int]:
    hosts: dict[str, int] = {}
    for with_rules in (True, False):
        for i, config in enumerate(configs):
            t = _collector_type(config)
            if (
                t in REWORK_COLLECTORS
                and t not in hosts
                and (not with_rules or any(is_rework_rule(t, r) for r in _rules_of(config)))
            ):
                hosts[t] = i
    return hosts


def _keep_rules(
    collector_type: str, config: Any, wanted: list[tuple[RuleKey, JSON]]
) -> tuple[list[Any], bool]:
    """The config's rules minus rework rules not in `wanted` (and repeats); whether any was removed."""
    left = Counter(k for k, _ in wanted)
    kept: list[Any] = []
    removed = False
    for rule in _rules_of(config):
        if not is_rework_rule(collector_type, rule):
            kept.append(rule)
            continue
        key = rule_key(rule_from_json(collector_type, rule))
        if left[key] > 0:
            left[key] -= 1
            kept.append(rule)
        else:
            removed = True
    return kept, removed
