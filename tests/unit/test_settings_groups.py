"""Each settings group's parser on its own: its table, its env vars, its flags, in that order of precedence."""

from __future__ import annotations

import pytest

from gateway.limit_spec import LimitSpec
from gateway.request_kinds import ALL_KINDS, KIND_CREATE_TASKS, KIND_GET_POOL
from gateway.settings.auth import auth_from
from gateway.settings.config_only import DedupeSettings
from gateway.settings.observability import observability_from
from gateway.settings.parsing import SettingsError, apply_table, env_int
from gateway.settings.rate_limits import default_limits, rate_limits_from
from gateway.settings.server import server_from
from gateway.settings.toloka import toloka_from


def test_listen_comes_from_flag_then_env_then_table_when_each_is_set() -> None:
    table = {"listen": "table:1"}
    assert server_from({}, {}, listen=None, shutdown_delay=None).listen == "[::]:50051"
    assert server_from(table, {}, listen=None, shutdown_delay=None).listen == "table:1"
    env = {"GATEWAY_LISTEN": "env:1"}
    assert server_from(table, env, listen=None, shutdown_delay=None).listen == "env:1"
    assert server_from(table, env, listen="flag:1", shutdown_delay=None).listen == "flag:1"


def test_toloka_url_is_production_when_an_api_key_is_given_without_a_url() -> None:
    toloka = toloka_from({}, {"TOLOKA_API_KEY": " sk "}, toloka_url=None)
    assert (toloka.url, toloka.api_key) == ("https://toloka.dev", "sk")
    assert toloka_from({}, {"TOLOKA_API_KEY": "sk"}, toloka_url="emulator").uses_emulator


def test_create_task_env_limits_apply_when_the_table_has_no_limits() -> None:
    env = {"GATEWAY_CREATE_TASKS_PER_MINUTE": "5", "GATEWAY_CREATE_TASKS_PER_DAY": "6"}
    assert rate_limits_from({}, env).limits == default_limits(5, 6)
    table = {"limits": [{"name": "a", "capacity": 1, "period": "1s"}]}
    assert rate_limits_from(table, env).limits == (LimitSpec("a", (ALL_KINDS,), 1, 1.0),)


def test_limit_counts_tasks_only_for_its_kinds_when_its_unit_is_tasks() -> None:
    spec = LimitSpec("per_minute", (KIND_CREATE_TASKS,), 10, 60.0, "tasks")
    assert spec.applies_to(KIND_CREATE_TASKS) and not spec.applies_to(KIND_GET_POOL)
    assert (spec.cost(7), spec.cost(0)) == (7, 1)


def test_log_level_is_upper_case_and_env_wins_when_both_are_set() -> None:
    obs = observability_from({"log_level": "info"}, {"GATEWAY_LOG_LEVEL": "debug"}, metrics_listen=None)
    assert obs.log_level == "DEBUG"


def test_auth_mode_from_env_is_checked_when_it_needs_files() -> None:
    with pytest.raises(SettingsError, match=r"auth\.mode = token needs auth\.tokens_file"):
        auth_from({}, {"GATEWAY_AUTH_MODE": "token"})


def test_table_key_is_refused_when_the_group_has_no_such_field() -> None:
    with pytest.raises(SettingsError, match=r"config \[dedupe\]: unknown key 'nope'"):
        apply_table(DedupeSettings(), {"nope": 1}, "dedupe")
    assert apply_table(DedupeSettings(), {"lease_s": "500ms"}, "dedupe").lease_s == 0.5


@pytest.mark.parametrize(("raw", "message"), [("x", "is not an integer"), ("0", "must be positive")])
def test_env_integer_is_refused_when_not_a_positive_integer(raw: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        env_int({"N": raw}, "N", 1)
