"""Rework rules <-> quality_control JSON: exact JSON, grouping, parsing back, comparison, refusals."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.errors import InvalidArgument, ViolationList
from gateway.translate import quality_control as qc
from gateway.translate.ids import check_pool_id


def skill(skill_id: str = "", delta: int = 1, open_pool: bool = True) -> pb.ReworkRule:
    return pb.ReworkRule(
        skill_change=pb.SkillChangeTrigger(skill_id=skill_id), delta=delta, open_pool=open_pool
    )


def restriction(delta: int = 1, open_pool: bool = True) -> pb.ReworkRule:
    return pb.ReworkRule(restriction=pb.RestrictionTrigger(), delta=delta, open_pool=open_pool)


def assessment(
    event: int = pb.ASSESSMENT_EVENT_REJECT,
    *conditions: tuple[int, int, int],
    delta: int = 1,
    open_pool: bool = True,
) -> pb.ReworkRule:
    return pb.ReworkRule(
        assessment=pb.AssessmentTrigger(assessment_event=event),  # type: ignore[arg-type]
        conditions=[pb.ReworkCondition(key=k, operator=o, value=v) for k, o, v in conditions],  # type: ignore[arg-type]
        delta=delta,
        open_pool=open_pool,
    )


def overlap(delta: int = 1, open_pool: bool = True) -> dict[str, Any]:
    return {"type": "CHANGE_OVERLAP", "parameters": {"delta": delta, "open_pool": open_pool}}


def cond(key: str, op: str, value: Any) -> dict[str, Any]:
    return {"key": key, "operator": op, "value": value}


GOLDEN: dict[str, Any] = {
    "collector_config": {"type": "GOLDEN_SET", "uuid": "g-uuid", "parameters": {"history_size": 10}},
    "rules": [
        {
            "conditions": [cond("incorrect_answers_rate", "GTE", 50)],
            "action": {"type": "RESTRICTION_V2", "parameters": {"scope": "PROJECT", "duration": 1}},
        }
    ],
}


def pool_with(*configs: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "id": "2",
        "status": "CLOSED",
        "quality_control": {"configs": [copy.deepcopy(c) for c in configs]},
        **fields,
    }


def violations(rules: list[pb.ReworkRule]) -> list[tuple[str, str]]:
    problems = ViolationList()
    qc.check_rules(rules, problems)
    return [(v.field, v.reason) for v in problems.items]


# ---- typed -> JSON ---------------------------------------------------------------------------


def test_skill_change_rule_translates_to_toloka_json_when_skill_given() -> None:
    assert qc.rules_to_configs([skill("2626")]) == [
        {
            "collector_config": {"type": "USERS_ASSESSMENT"},
            "rules": [
                {
                    "conditions": [
                        cond("pool_access_revoked_reason", "EQ", "SKILL_CHANGE"),
                        cond("skill_id", "EQ", "2626"),
                    ],
                    "action": overlap(1, True),
                }
            ],
        }
    ]


def test_skill_change_rule_has_no_skill_condition_when_skill_empty() -> None:
    assert qc.rule_to_json(skill("", delta=2, open_pool=False)) == {
        "conditions": [cond("pool_access_revoked_reason", "EQ", "SKILL_CHANGE")],
        "action": overlap(2, False),
    }


def test_restriction_rule_translates_to_toloka_json() -> None:
    assert qc.rule_to_json(restriction()) == {
        "conditions": [cond("pool_access_revoked_reason", "EQ", "RESTRICTION")],
        "action": overlap(1, True),
    }


@pytest.mark.parametrize(
    ("event", "name"),
    [
        (pb.ASSESSMENT_EVENT_ACCEPT, "ACCEPT"),
        (pb.ASSESSMENT_EVENT_ACCEPT_AFTER_REJECT, "ACCEPT_AFTER_REJECT"),
        (pb.ASSESSMENT_EVENT_REJECT, "REJECT"),
    ],
)
def test_assessment_rule_translates_each_event(event: int, name: str) -> None:
    assert qc.rules_to_configs([assessment(event, delta=-1, open_pool=False)]) == [
        {
            "collector_config": {"type": "ASSIGNMENTS_ASSESSMENT"},
            "rules": [{"conditions": [cond("assessment_event", "EQ", name)], "action": overlap(-1, False)}],
        }
    ]


def test_assessment_rule_carries_count_conditions_as_ints() -> None:
    rule = assessment(
        pb.ASSESSMENT_EVENT_REJECT,
        (pb.CONDITION_KEY_REJECTED_ASSIGNMENTS_COUNT, pb.COMPARISON_OPERATOR_GTE, 2),
        (pb.CONDITION_KEY_PENDING_ASSIGNMENTS_COUNT, pb.COMPARISON_OPERATOR_EQ, 0),
        (pb.CONDITION_KEY_ACCEPTED_ASSIGNMENTS_COUNT, pb.COMPARISON_OPERATOR_LT, 3),
    )
    assert qc.rule_to_json(rule)["conditions"] == [
        cond("assessment_event", "EQ", "REJECT"),
        cond("rejected_assignments_count", "GTE", 2),
        cond("pending_assignments_count", "EQ", 0),
        cond("accepted_assignments_count", "LT", 3),
    ]


def test_rules_of_one_collector_share_one_config_in_first_use_order() -> None:
    configs = qc.rules_to_configs(
        [restriction(), assessment(), skill("2626"), assessment(pb.ASSESSMENT_EVENT_ACCEPT)]
    )
    assert [c["collector_config"]["type"] for c in configs] == ["USERS_ASSESSMENT", "ASSIGNMENTS_ASSESSMENT"]
    assert configs[0] == {
        "collector_config": {"type": "USERS_ASSESSMENT"},
        "rules": [qc.rule_to_json(restriction()), qc.rule_to_json(skill("2626"))],
    }
    assert len(configs[1]["rules"]) == 2


# ---- JSON -> typed ---------------------------------------------------------------------------


def test_every_trigger_round_trips_through_json() -> None:
    rules = [
        skill("2626"),
        skill("", delta=3, open_pool=False),
        restriction(delta=-2),
        assessment(
            pb.ASSESSMENT_EVENT_ACCEPT_AFTER_REJECT,
            (pb.CONDITION_KEY_REJECTED_ASSIGNMENTS_COUNT, pb.COMPARISON_OPERATOR_GT, 1),
        ),
    ]
    parsed = qc.parse_pool_rules(pool_with(*qc.rules_to_configs(rules)))
    assert parsed.unsupported == []
    assert qc.same_rules(parsed.rules, rules)
    assert sorted(r.SerializeToString(deterministic=True) for r in parsed.rules) == sorted(
        r.SerializeToString(deterministic=True) for r in rules
    )


def test_parse_accepts_toloka_doc_spellings_when_values_are_strings_or_open_pool_absent() -> None:
    config = {
        "collector_config": {"type": "ASSIGNMENTS_ASSESSMENT"},
        "rules": [
            {
                "conditions": [
                    cond("rejected_assignments_count", "GTE", "1"),
                    cond("assessment_event", "EQ", "REJECT"),
                ],
                "action": {"type": "CHANGE_OVERLAP", "parameters": {"delta": 1}},
            }
        ],
    }
    users = {
        "collector_config": {"type": "USERS_ASSESSMENT"},
        "rules": [
            {
                "conditions": [
                    cond("skill_id", "EQ", 2626),
                    cond("pool_access_revoked_reason", "EQ", "SKILL_CHANGE"),
                ],
                "action": overlap(1, True),
            }
        ],
    }
    parsed = qc.parse_pool_rules(pool_with(config, users))
    assert parsed.unsupported == []
    expected = [
        assessment(
            pb.ASSESSMENT_EVENT_REJECT,
            (pb.CONDITION_KEY_REJECTED_ASSIGNMENTS_COUNT, pb.COMPARISON_OPERATOR_GTE, 1),
            open_pool=False,
        ),
        skill("2626"),
    ]
    assert list(parsed.rules) == expected


def test_parse_ignores_foreign_rules_and_non_overlap_actions() -> None:
    users_restriction_v2 = {
        "collector_config": {"type": "USERS_ASSESSMENT"},
        "rules": [
            {
                "conditions": [cond("pool_access_revoked_reason", "EQ", "RESTRICTION")],
                "action": {"type": "SET_SKILL"},
            }
        ],
    }
    parsed = qc.parse_pool_rules(pool_with(GOLDEN, users_restriction_v2))
    assert parsed.rules == [] and parsed.unsupported == []


@pytest.mark.parametrize(
    ("collector", "conditions", "parameters"),
    [
        ("USERS_ASSESSMENT", [cond("pool_access_revoked_reason", "NE", "RESTRICTION")], {"delta": 1}),
        (
            "USERS_ASSESSMENT",
            [cond("pool_access_revoked_reason", "EQ", "RESTRICTION"), cond("skill_id", "EQ", "1")],
            {"delta": 1},
        ),
        (
            "USERS_ASSESSMENT",
            [cond("pool_access_revoked_reason", "EQ", "SKILL_CHANGE"), cond("skill_id", "NE", "1")],
            {"delta": 1},
        ),
        ("USERS_ASSESSMENT", [cond("pool_access_revoked_reason", "EQ", "SKILL_CHANGE")], {"delta": 0}),
        (
            "USERS_ASSESSMENT",
            [cond("pool_access_revoked_reason", "EQ", "SKILL_CHANGE")],
            {"delta": 1, "x": 1},
        ),
        ("USERS_ASSESSMENT", [cond("total_answers_count", "GT", 1)], {"delta": 1}),
        ("ASSIGNMENTS_ASSESSMENT", [cond("assessment_event", "NE", "REJECT")], {"delta": 1}),
        (
            "ASSIGNMENTS_ASSESSMENT",
            [cond("assessment_event", "EQ", "REJECT"), cond("rejected_assignments_count", "GT", -1)],
            {"delta": 1},
        ),
        ("ASSIGNMENTS_ASSESSMENT", [cond("rejected_assignments_count", "GT", 1)], {"delta": 1}),
        ("ASSIGNMENTS_ASSESSMENT", [], {"delta": 1}),
        (  # ids and counts are matched in full: a trailing newline is not the same id or number
            "USERS_ASSESSMENT",
            [cond("pool_access_revoked_reason", "EQ", "SKILL_CHANGE"), cond("skill_id", "EQ", "12\n")],
            {"delta": 1},
        ),
        (
            "ASSIGNMENTS_ASSESSMENT",
            [cond("assessment_event", "EQ", "REJECT"), cond("rejected_assignments_count", "GT", "2\n")],
            {"delta": 1},
        ),
        ("USERS_ASSESSMENT", [cond("pool_access_revoked_reason", "EQ", "RESTRICTION")], {"delta": "1\n"}),
    ],
)
def test_parse_reports_rules_the_typed_model_cannot_express(
    collector: str, conditions: list[dict[str, Any]], parameters: dict[str, Any]
) -> None:
    config = {
        "collector_config": {"type": collector},
        "rules": [{"conditions": conditions, "action": {"type": "CHANGE_OVERLAP", "parameters": parameters}}],
    }
    parsed = qc.parse_pool_rules(pool_with(GOLDEN, config))
    assert parsed.rules == []
    assert [v.field for v in parsed.unsupported] == ["pool.quality_control.configs[1].rules[0]"]


# ---- normalised comparison -------------------------------------------------------------------


def test_same_rules_ignores_rule_and_condition_order() -> None:
    a = [
        restriction(),
        assessment(
            pb.ASSESSMENT_EVENT_REJECT,
            (pb.CONDITION_KEY_REJECTED_ASSIGNMENTS_COUNT, pb.COMPARISON_OPERATOR_GTE, 2),
            (pb.CONDITION_KEY_PENDING_ASSIGNMENTS_COUNT, pb.COMPARISON_OPERATOR_EQ, 0),
        ),
    ]
    b = [
        assessment(
            pb.ASSESSMENT_EVENT_REJECT,
            (pb.CONDITION_KEY_PENDING_ASSIGNMENTS_COUNT, pb.COMPARISON_OPERATOR_EQ, 0),
            (pb.CONDITION_KEY_REJECTED_ASSIGNMENTS_COUNT, pb.COMPARISON_OPERATOR_GTE, 2),
        ),
        restriction(),
    ]
    assert qc.same_rules(a, b)
    assert qc.canonical_rules(a) == qc.canonical_rules(b)


@pytest.mark.parametrize(
    "other",
    [
        [restriction(delta=2)],
        [restriction(open_pool=False)],
        [skill()],
        [restriction(), restriction()],
        [],
    ],
)
def test_same_rules_sees_any_difference_in_delta_open_pool_trigger_or_count(
    other: list[pb.ReworkRule],
) -> None:
    assert not qc.same_rules([restriction()], other)


# ---- merge -----------------------------------------------------------------------------------


USERS: dict[str, Any] = {
    "collector_config": {"type": "USERS_ASSESSMENT", "uuid": "u-uuid"},
    "rules": [
        {"conditions": [cond("pool_access_revoked_reason", "EQ", "RESTRICTION")], "action": overlap(1, True)}
    ],
}


def test_merge_keeps_foreign_configs_and_the_uuid_of_a_kept_rework_config() -> None:
    pool = pool_with(GOLDEN, USERS, private_name="p", quality_control_extra=1)
    pool["quality_control"]["captcha_frequency"] = "LOW"
    new = qc.merged_pool(pool, [restriction(), skill("2626")])
    configs = new["quality_control"]["configs"]
    assert configs[0] == GOLDEN
    assert configs[1]["collector_config"] == {"type": "USERS_ASSESSMENT", "uuid": "u-uuid"}
    assert configs[1]["rules"] == [USERS["rules"][0], qc.rule_to_json(skill("2626"))]
    assert {k: v for k, v in new.items() if k != "quality_control"} == {
        k: v for k, v in pool.items() if k != "quality_control"
    }
    assert new["quality_control"]["captcha_frequency"] == "LOW"
    assert pool["quality_control"]["configs"][1] == USERS  # the input is not modified


def test_merge_drops_a_rework_config_left_without_rules_and_adds_new_collectors_at_the_end() -> None:
    new = qc.merged_pool(pool_with(USERS, GOLDEN), [assessment()])
    assert new["quality_control"]["configs"] == [
        GOLDEN,
        {"collector_config": {"type": "ASSIGNMENTS_ASSESSMENT"}, "rules": [qc.rule_to_json(assessment())]},
    ]


def test_merge_keeps_non_overlap_rules_of_a_rework_collector() -> None:
    mixed = copy.deepcopy(USERS)
    foreign = {
        "conditions": [cond("pool_access_revoked_reason", "EQ", "RESTRICTION")],
        "action": {"type": "SET_SKILL"},
    }
    mixed["rules"].append(foreign)
    new = qc.merged_pool(pool_with(mixed), [])
    assert new["quality_control"]["configs"] == [
        {"collector_config": USERS["collector_config"], "rules": [foreign]}
    ]


def test_merge_moves_rules_of_a_split_collector_into_one_config() -> None:
    second = {
        "collector_config": {"type": "USERS_ASSESSMENT", "uuid": "u2"},
        "rules": [qc.rule_to_json(skill("7"))],
    }
    new = qc.merged_pool(pool_with(USERS, second), [restriction(), skill("7")])
    assert new["quality_control"]["configs"] == [
        {
            "collector_config": USERS["collector_config"],
            "rules": [USERS["rules"][0], qc.rule_to_json(skill("7"))],
        }
    ]


def test_merge_creates_quality_control_when_the_pool_has_none() -> None:
    new = qc.merged_pool({"id": "1"}, [restriction()])
    assert new["quality_control"] == {"configs": qc.rules_to_configs([restriction()])}


def test_merge_then_parse_yields_exactly_the_requested_rules() -> None:
    rules = [skill("1"), assessment(pb.ASSESSMENT_EVENT_ACCEPT, delta=-1)]
    assert qc.same_rules(qc.parse_pool_rules(qc.merged_pool(pool_with(GOLDEN, USERS), rules)).rules, rules)


# ---- refusals --------------------------------------------------------------------------------


def test_valid_rules_have_no_violations() -> None:
    cond_ok = (pb.CONDITION_KEY_REJECTED_ASSIGNMENTS_COUNT, pb.COMPARISON_OPERATOR_GTE, 0)
    assert (
        violations(
            [skill("2626"), skill(), restriction(delta=-1), assessment(pb.ASSESSMENT_EVENT_REJECT, cond_ok)]
        )
        == []
    )


def test_rule_without_trigger_is_refused() -> None:
    assert violations([pb.ReworkRule(delta=1)]) == [("rules[0].trigger", "REQUIRED")]


def test_zero_delta_is_refused() -> None:
    assert violations([restriction(delta=0)]) == [("rules[0].delta", "OUT_OF_RANGE")]


@pytest.mark.parametrize(
    "bad",
    ["abc", "12a", "-1", "0", "01", " 1", "1" * 20, "5\n", "5 ", "5\r\n", "5\t", "1\n2", "\uff15", "\u0665"],
)
def test_skill_id_that_is_not_a_decimal_id_is_refused(bad: str) -> None:
    assert violations([skill(bad)]) == [("rules[0].skill_change.skill_id", "INVALID_ID")]


def test_conditions_on_user_triggers_are_refused() -> None:
    c = (pb.CONDITION_KEY_REJECTED_ASSIGNMENTS_COUNT, pb.COMPARISON_OPERATOR_GTE, 1)
    r1, r2 = skill("5"), restriction()
    for r in (r1, r2):
        r.conditions.add(key=c[0], operator=c[1], value=c[2])
    assert violations([r1, r2]) == [
        ("rules[0].conditions", "NOT_ALLOWED"),
        ("rules[1].conditions", "NOT_ALLOWED"),
    ]


def test_unspecified_and_unknown_enums_are_refused() -> None:
    rules = [
        assessment(pb.ASSESSMENT_EVENT_UNSPECIFIED),
        assessment(pb.ASSESSMENT_EVENT_REJECT, (0, 0, 1)),
        assessment(42, (99, 77, 1)),
    ]
    assert violations(rules) == [
        ("rules[0].assessment.assessment_event", "UNSPECIFIED"),
        ("rules[1].conditions[0].key", "UNSPECIFIED"),
        ("rules[1].conditions[0].operator", "UNSPECIFIED"),
        ("rules[2].assessment.assessment_event", "UNKNOWN_ENUM_VALUE"),
        ("rules[2].conditions[0].key", "UNKNOWN_ENUM_VALUE"),
        ("rules[2].conditions[0].operator", "UNKNOWN_ENUM_VALUE"),
    ]


def test_negative_count_is_refused() -> None:
    rule = assessment(
        pb.ASSESSMENT_EVENT_REJECT,
        (pb.CONDITION_KEY_PENDING_ASSIGNMENTS_COUNT, pb.COMPARISON_OPERATOR_LT, -1),
    )
    assert violations([rule]) == [("rules[0].conditions[0].value", "OUT_OF_RANGE")]


def test_duplicate_rules_are_refused_even_with_conditions_reordered() -> None:
    c1 = (pb.CONDITION_KEY_PENDING_ASSIGNMENTS_COUNT, pb.COMPARISON_OPERATOR_EQ, 0)
    c2 = (pb.CONDITION_KEY_REJECTED_ASSIGNMENTS_COUNT, pb.COMPARISON_OPERATOR_GT, 1)
    rules = [assessment(3, c1, c2), restriction(), assessment(3, c2, c1), restriction(delta=2)]
    assert violations(rules) == [("rules[2]", "DUPLICATE_RULE")]


def test_assessment_rules_are_named_by_index_for_auto_accept_pools() -> None:
    found = qc.assessment_rule_violations([restriction(), assessment(), skill(), assessment(1)])
    assert [(v.field, v.reason) for v in found] == [
        ("rules[1]", "AUTO_ACCEPT_POOL"),
        ("rules[3]", "AUTO_ACCEPT_POOL"),
    ]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("1", True),
        ("32267581", True),
        ("", False),
        ("x1", False),
        ("0", False),
        ("2\n", False),
        ("2\r\n", False),
        (" 2", False),
        ("2 ", False),
        ("2\t", False),
        ("2\x00", False),
        ("1\n2", False),
        ("\uff12", False),  # a full-width digit
    ],
)
def test_pool_id_must_be_a_decimal_id(value: str, ok: bool) -> None:
    problems = ViolationList()
    check_pool_id(value, problems)
    if ok:
        problems.raise_if_any()
    else:
        with pytest.raises(InvalidArgument):
            problems.raise_if_any()


def test_too_many_rules_are_refused_when_over_the_bound() -> None:
    rules = [restriction(delta=d) for d in range(1, qc.MAX_REWORK_RULES + 2)]
    assert violations(rules) == [("rules", "TOO_MANY")]
    assert violations(rules[: qc.MAX_REWORK_RULES]) == []


def test_too_many_conditions_are_refused_when_over_the_bound() -> None:
    c = (pb.CONDITION_KEY_REJECTED_ASSIGNMENTS_COUNT, pb.COMPARISON_OPERATOR_GTE, 1)
    over = assessment(pb.ASSESSMENT_EVENT_REJECT, *[c] * (qc.MAX_CONDITIONS_PER_RULE + 1))
    assert violations([over]) == [("rules[0].conditions", "TOO_MANY")]
