"""`decide_hits`: several hits decided together, with explicit costs, shadow limits and the time
until each window frees its next unit; run against the Redis backend and the in-process backend."""

from __future__ import annotations

import pytest

from gateway.limit_spec import LimitSpec
from gateway.ratelimit import Hit, LimitRef, RedisRateLimiter
from gateway.ratelimit.decision import SHADOW_CAPACITY, ChargePlanner
from gateway.ratelimit.window import US, Debit
from gateway.request_kinds import ALL_KINDS, KIND_CREATE_TASKS, KIND_GET_POOL
from gateway.settings import RateLimitSettings
from gateway.shared_state import SharedRedis, connect_redis
from tests.ratelimit.conftest import T0, MakeLimiter
from tests.support.clock import ManualClock

ACCOUNT = LimitSpec("account", (ALL_KINDS,), 10, 1.0)
TASKS = LimitSpec("tasks_per_minute", (KIND_CREATE_TASKS,), 10, 50.0, "tasks")  # 0.5 s buckets
QUOTA = LimitSpec("quota", (ALL_KINDS,), 3, 1.0)


def settings(*limits: LimitSpec, quota: tuple[LimitSpec, ...] = ()) -> RateLimitSettings:
    return RateLimitSettings(limits=limits, caller_quotas={"svc": quota})


def remaining(decision_remaining: tuple[tuple[LimitRef, int], ...]) -> dict[str, int]:
    return {ref.subject: left for ref, left in decision_remaining}


async def test_hits_are_admitted_all_or_none_when_one_of_them_does_not_fit(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(settings(ACCOUNT, TASKS))
    refused = await limiter.decide_hits([Hit(KIND_GET_POOL), Hit(KIND_CREATE_TASKS, tasks=11)])
    assert not refused.admitted
    assert [r.limit for r in refused.refusals] == [LimitRef("tasks_per_minute")]
    assert refused.retry_after is None  # 11 tasks never fit in 10
    admitted = await limiter.decide_hits([Hit(KIND_GET_POOL)])
    assert remaining(admitted.remaining) == {"account": 9}  # the refused decision debited nothing


async def test_a_limit_several_hits_reach_is_charged_once_at_their_largest_cost(
    make_limiter: MakeLimiter,
) -> None:
    limiter = make_limiter(settings(ACCOUNT, TASKS))
    decision = await limiter.decide_hits(
        [Hit(KIND_CREATE_TASKS, tasks=4), Hit(KIND_CREATE_TASKS, tasks=6), Hit(KIND_GET_POOL)]
    )
    assert decision.admitted
    assert remaining(decision.remaining) == {"account": 9, "tasks_per_minute": 4}


async def test_task_counted_limit_is_spent_in_tasks_and_refuses_with_the_wait_for_the_room(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(settings(TASKS))
    assert (await limiter.decide_hits([Hit(KIND_CREATE_TASKS, tasks=7)])).admitted
    await clock.advance_to(T0 + 30.0)
    refused = await limiter.decide_hits([Hit(KIND_CREATE_TASKS, tasks=4)])
    assert not refused.admitted
    # The 7 tasks sit in the 0.5 s bucket of T0; it leaves the 101-bucket span at T0 + 50.5 s.
    assert refused.retry_after == pytest.approx(20.5, abs=1e-6)
    assert (await limiter.decide_hits([Hit(KIND_CREATE_TASKS, tasks=3)])).admitted


async def test_a_caller_quota_applies_only_to_hits_that_name_the_caller(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(settings(ACCOUNT, quota=(QUOTA,)))
    for _ in range(3):
        assert (await limiter.decide_hits([Hit(KIND_GET_POOL, caller="svc")])).admitted
    refused = await limiter.decide_hits([Hit(KIND_GET_POOL, caller="svc")])
    assert [r.limit for r in refused.refusals] == [LimitRef("quota", "svc")]
    anonymous = await limiter.decide_hits([Hit(KIND_GET_POOL)])
    assert remaining(anonymous.remaining) == {"account": 6}


async def test_an_unknown_kind_counts_against_the_account_wide_limits_only(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(settings(ACCOUNT, TASKS))
    decision = await limiter.decide_hits([Hit("not_a_kind", tasks=5)])
    assert remaining(decision.remaining) == {"account": 9}


async def test_an_admission_says_when_each_window_frees_its_next_unit(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(settings(ACCOUNT, TASKS))
    await limiter.decide_hits([Hit(KIND_GET_POOL)])
    await clock.advance_to(T0 + 0.3)
    decision = await limiter.decide_hits([Hit(KIND_CREATE_TASKS)])
    frees = dict(zip((ref.name for ref, _ in decision.remaining), decision.frees_in, strict=True))
    # account: T0's 10 ms bucket leaves at T0 + 1.01 s; tasks: the 0.5 s bucket of T0 + 0.3 s
    # (starting at T0) leaves at T0 + 50.5 s.
    assert frees == pytest.approx({"account": 0.71, "tasks_per_minute": 50.2}, abs=1e-6)


async def test_a_shadow_limit_never_refuses_but_reports_what_it_would_have_refused(
    make_limiter: MakeLimiter,
) -> None:
    two = LimitSpec("two", (ALL_KINDS,), 2, 1.0)
    limiter = make_limiter(settings(ACCOUNT, two))
    shadow = frozenset({"two"})
    planner = ChargePlanner(settings=limiter.settings)
    charge = next(c for c in planner.combined([Hit(KIND_GET_POOL)], shadow) if c.ref.name == "two")
    assert charge.capacity == SHADOW_CAPACITY
    would = []
    for _ in range(3):
        decision = await limiter.decide_hits([Hit(KIND_GET_POOL)], shadow=shadow)
        assert decision.admitted
        would.append(charge.would_refuse(remaining(decision.remaining)["two"]))
    assert would == [False, False, True]
    assert remaining(decision.remaining)["account"] == 7  # the enforced limit counted all three


async def test_hits_honour_the_cooldown_of_a_kind_with_its_own_toloka_limit(
    make_limiter: MakeLimiter,
) -> None:
    limiter = make_limiter(settings(ACCOUNT, TASKS))
    await limiter.report_throttled(5.0, kind=KIND_CREATE_TASKS)
    refused = await limiter.decide_hits([Hit(KIND_GET_POOL), Hit(KIND_CREATE_TASKS)])
    assert not refused.admitted
    assert refused.refusals[0].limit is None
    assert refused.retry_after == pytest.approx(5.0, abs=1e-6)
    assert (await limiter.decide_hits([Hit(KIND_GET_POOL)])).admitted


async def test_next_unit_frees_with_the_oldest_bucket_still_counted_when_older_ones_have_left(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(settings(ACCOUNT))
    for at in (0.0, 0.5, 0.7):
        await clock.advance_to(T0 + at)
        await limiter.decide_hits([Hit(KIND_GET_POOL)])
    frees = []
    for at in (0.9, 1.2, 1.6, 1.8):  # T0's bucket leaves at 1.01, T0 + 0.5's at 1.51, ...
        await clock.advance_to(T0 + at)
        frees.append((await limiter.decide_hits([Hit(KIND_GET_POOL)])).frees_in[0])
    assert frees == pytest.approx([0.11, 0.31, 0.11, 0.11], abs=1e-6)


async def test_next_unit_frees_with_a_written_back_older_bucket_when_a_degraded_spell_ends(
    redis_url: str, clock: ManualClock
) -> None:
    shared = SharedRedis(connect_redis(redis_url))
    limiter = RedisRateLimiter(shared=shared, settings=settings(ACCOUNT), clock=clock, server_time=clock.now)
    try:
        await clock.advance_to(T0 + 0.5)
        first = await limiter.decide_hits([Hit(KIND_GET_POOL)])
        assert first.frees_in == pytest.approx((1.01,), abs=1e-6)
        # A replica admitted 3 locally at T0 + 0.2 (its bucket 20 of 10 ms) and writes them back.
        charge = limiter.planner.combined([Hit(KIND_GET_POOL)])[0]
        geometry = charge.geometry
        at_us = round((T0 + 0.5) * US)
        await limiter.write_back(
            [Debit(charge.key, geometry, at_us, ((round((T0 + 0.2) * US) // geometry.width_us, 3),))]
        )
        await clock.advance_to(T0 + 0.6)
        after = await limiter.decide_hits([Hit(KIND_GET_POOL)])
        assert after.frees_in == pytest.approx((0.61,), abs=1e-6)  # T0 + 0.2's bucket leaves at 1.21
        assert after.remaining[0][1] == 10 - 5
    finally:
        await shared.close()
