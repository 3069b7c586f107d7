"""Validation of the typed rework rules of a SetReworkRules request: every violation, with its field path.

This module owns the request's size bounds (`MAX_REWORK_RULES`, `MAX_CONDITIONS_PER_RULE`) and
the checks of each rule (trigger, delta, skill id, enums, duplicates by normalised form), plus
the refusal of assessment rules on a pool with automatic acceptance.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.errors import FieldViolation, ViolationList
from gateway.translate.ids import check_toloka_id
from gateway.translate.rework_rules_wire import COUNT_KEYS, EVENTS, OPERATORS, RuleKey, rule_key

# Size bounds of a SetReworkRules request (its only text is ids, bounded by their format): a pool
# holds a handful of rework rules, and each rule is written back to Toloka with the whole pool.
MAX_REWORK_RULES = 100
MAX_CONDITIONS_PER_RULE = 20


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
