"""A pool's rework rules: read out of its `quality_control.configs`, and merged back in.

Every config and rule that is not a rework rule is "foreign" here: it is carried through a merge
byte for byte, and so is the `collector_config` (with its server-assigned `uuid`) of a rework
config that keeps any rule.

A rework rule on the pool that the typed model cannot express is *unsupported*: reading and
writing such a pool is refused (see `PoolRules.unsupported`), because neither "keep it" (the
pool would not have exactly the requested rules) nor "drop it" (silent loss of a rule the
caller could not even see) is honest.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.errors import FieldViolation
from gateway.translate.rework_rules_wire import (
    JSON,
    REWORK_COLLECTORS,
    RuleKey,
    UnsupportedRule,
    collector_of,
    is_rework_rule,
    rule_from_json,
    rule_key,
    rule_to_json,
)


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
