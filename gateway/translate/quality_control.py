"""Re-execution ("rework") rules <-> a pool's `quality_control`: the one import for their users.

This module holds no logic; it names the public surface of three modules, one per responsibility:

rework_rules_wire.py   typed `ReworkRule` <-> Toloka's rule and config JSON, and the rules' normalised form
rework_rules_check.py  validation of the typed rules of a request (size bounds, field paths, duplicates)
rework_rules_pool.py   a pool's rework rules read out of its configs, and merged back in keeping the rest
"""

from __future__ import annotations

from gateway.translate.rework_rules_check import (
    MAX_CONDITIONS_PER_RULE,
    MAX_REWORK_RULES,
    assessment_rule_violations,
    check_rules,
)
from gateway.translate.rework_rules_pool import PoolRules, merged_pool, parse_pool_rules
from gateway.translate.rework_rules_wire import (
    ASSESSMENT_EVENT,
    ASSIGNMENTS_ASSESSMENT,
    CHANGE_OVERLAP,
    COUNT_KEYS,
    EVENTS,
    JSON,
    OPERATORS,
    RESTRICTION,
    REVOKED_REASON,
    REWORK_COLLECTORS,
    SKILL_CHANGE,
    SKILL_ID,
    USERS_ASSESSMENT,
    RuleKey,
    UnsupportedRule,
    canonical_rules,
    collector_of,
    is_rework_rule,
    rule_from_json,
    rule_key,
    rule_to_json,
    rules_to_configs,
    same_rules,
)

__all__ = [
    "ASSESSMENT_EVENT",
    "ASSIGNMENTS_ASSESSMENT",
    "CHANGE_OVERLAP",
    "COUNT_KEYS",
    "EVENTS",
    "JSON",
    "MAX_CONDITIONS_PER_RULE",
    "MAX_REWORK_RULES",
    "OPERATORS",
    "RESTRICTION",
    "REVOKED_REASON",
    "REWORK_COLLECTORS",
    "SKILL_CHANGE",
    "SKILL_ID",
    "USERS_ASSESSMENT",
    "PoolRules",
    "RuleKey",
    "UnsupportedRule",
    "assessment_rule_violations",
    "canonical_rules",
    "check_rules",
    "collector_of",
    "is_rework_rule",
    "merged_pool",
    "parse_pool_rules",
    "rule_from_json",
    "rule_key",
    "rule_to_json",
    "rules_to_configs",
    "same_rules",
]
