"""The `[rls]` group: defaults, the config table, the env vars, and shadow limits checked by name."""

from __future__ import annotations

import pytest

from gateway.limit_spec import LimitSpec
from gateway.settings import RateLimitSettings, SettingsError
from gateway.settings.rls import rls_from

LIMITS = RateLimitSettings(
    limits=(LimitSpec("account", ("*",), 5, 1.0),),
    caller_quotas={"svc": (LimitSpec("svc_quota", ("*",), 2, 1.0),)},
)


def test_service_is_on_for_domain_toloka_without_headers_when_nothing_is_set() -> None:
    rls = rls_from({}, {}, LIMITS)
    assert (rls.enabled, rls.domain, rls.shadow_limits, rls.response_headers) == (True, "toloka", (), False)
    assert rls.redis_budget_s < 0.020


def test_env_wins_over_the_table_when_both_set_domain_and_enabled() -> None:
    table = {"domain": "egress", "enabled": True, "redis_budget_s": "5ms"}
    rls = rls_from(table, {"GATEWAY_RLS_DOMAIN": "mesh", "GATEWAY_RLS_ENABLED": "false"}, LIMITS)
    assert (rls.domain, rls.enabled, rls.redis_budget_s) == ("mesh", False, 0.005)
    with pytest.raises(SettingsError, match="GATEWAY_RLS_ENABLED: 'maybe' is not a boolean"):
        rls_from({}, {"GATEWAY_RLS_ENABLED": "maybe"}, LIMITS)


def test_shadow_limits_must_name_a_global_limit_or_a_quota_when_set() -> None:
    assert rls_from({"shadow_limits": ["svc_quota", "account"]}, {}, LIMITS).shadow_limits == (
        "svc_quota",
        "account",
    )
    with pytest.raises(SettingsError, match="no limit is named 'acount'"):
        rls_from({"shadow_limits": ["acount"]}, {}, LIMITS)
    with pytest.raises(SettingsError, match="expected a list of limit names"):
        rls_from({"shadow_limits": "account"}, {}, LIMITS)


def test_unknown_key_and_bad_budget_are_refused_when_configured() -> None:
    with pytest.raises(SettingsError, match=r"config \[rls\]: unknown key 'domian'"):
        rls_from({"domian": "x"}, {}, LIMITS)
    with pytest.raises(SettingsError, match="redis_budget_s"):
        rls_from({"redis_budget_s": "2s"}, {}, LIMITS)
