"""`peek` (GetQuota's reading) and shadow limits, run against the Redis, in-process and Fallback
backends: what peek says is what the next decisions do, it changes nothing, and a shadow limit
never refuses but counts exactly what it would have refused."""

from __future__ import annotations

import uuid
from typing import cast

import pytest

from gateway.call import Call
from gateway.errors import RateLimited
from gateway.limit_spec import LimitSpec
from gateway.ratelimit import (
    AdmissionLimiter,
    FallbackRateLimiter,
    Hit,
    LocalRateLimiter,
    QuotaSnapshot,
    RedisRateLimiter,
)
from gateway.request_kinds import ALL_KINDS, KIND_CREATE_TASKS, KIND_GET_POOL
from gateway.settings import RateLimitSettings
from gateway.shared_state import AnyRedis, SharedRedis, connect_redis
from tests.ratelimit.conftest import T0, MakeLimiter
from tests.ratelimit.test_degraded_fleet import Partition
from tests.support.clock import ManualClock

ACCOUNT = LimitSpec("account", (ALL_KINDS,), 10, 1.0)
TASKS = LimitSpec("tasks_per_minute", (KIND_CREATE_TASKS,), 100, 60.0, "tasks")
QUOTA = LimitSpec("quota", (ALL_KINDS,), 4, 1.0)
TRIAL = LimitSpec("trial", (KIND_GET_POOL,), 2, 1.0, shadow=True)


def settings(*limits: LimitSpec, quota: tuple[LimitSpec, ...] = ()) -> RateLimitSettings:
    return RateLimitSettings(limits=limits, caller_quotas={"svc": quota}, max_wait_s=0.0)


def by_name(snapshot: QuotaSnapshot) -> dict[str, tuple[int, float]]:
    return {s.charge.ref.subject: (s.remaining, s.next_unit_in) for s in snapshot.limits}


async def flood(
    limiter: AdmissionLimiter, clock: ManualClock, kind: str = KIND_GET_POOL
) -> tuple[int, float]:
    """Requests of `kind` at one instant until one is refused: how many were admitted, and the refusal's wait."""
    count = 0
    while True:
        try:
            await limiter.acquire(kind, tasks=1, call=Call(caller="svc", deadline=clock.now()))
        except RateLimited as refused:
            assert refused.retry_after is not None
            return count, refused.retry_after
        count += 1


async def test_peek_says_how_many_requests_the_next_flood_admits_and_when_the_next_unit_frees(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(settings(ACCOUNT, TASKS, quota=(QUOTA,)))
    await limiter.acquire(KIND_GET_POOL, tasks=1, call=Call(caller="svc"))
    await clock.advance_to(T0 + 0.3)
    before = await limiter.peek(caller="svc", kind=KIND_GET_POOL)
    assert by_name(before) == {"account": (9, 0.0), "caller:svc/quota": (3, 0.0)}
    admitted, retry_after = await flood(limiter, clock)
    assert admitted == 3
    after = await limiter.peek(caller="svc", kind=KIND_GET_POOL)
    # T0's 10 ms bucket leaves the quota's window at T0 + 1.01 s.
    assert by_name(after) == {"account": (6, 0.0), "caller:svc/quota": (0, pytest.approx(0.71, abs=1e-6))}
    assert by_name(after)["caller:svc/quota"][1] == pytest.approx(retry_after, abs=1e-6)
    await clock.advance_to(T0 + 1.01)
    assert (await flood(limiter, clock))[0] == 1  # only T0's unit has left


async def test_peek_changes_nothing_however_often_it_is_asked(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(settings(ACCOUNT, quota=(QUOTA,)))
    for _ in range(2):
        await limiter.acquire(KIND_GET_POOL, tasks=1, call=Call(caller="svc"))
    first = await limiter.peek(caller="svc")
    for _ in range(20):
        assert await limiter.peek(caller="svc") == first
    assert (await flood(limiter, clock))[0] == 2
    assert limiter.stats.admitted["caller/quota"] == 4


async def test_peek_lists_global_limits_then_the_callers_quota_narrowed_to_a_kind_when_asked(
    make_limiter: MakeLimiter,
) -> None:
    limiter = make_limiter(settings(ACCOUNT, TASKS, quota=(QUOTA,)))
    every = await limiter.peek(caller="svc")
    assert [s.charge.ref.subject for s in every.limits] == ["account", "tasks_per_minute", "caller:svc/quota"]
    other = await limiter.peek(caller="other")  # no quota of its own, no default quota
    assert [s.charge.ref.subject for s in other.limits] == ["account", "tasks_per_minute"]
    creates = await limiter.peek(caller="svc", kind=KIND_CREATE_TASKS)
    assert [s.charge.ref.subject for s in creates.limits] == [
        "account",
        "tasks_per_minute",
        "caller:svc/quota",
    ]
    pools = await limiter.peek(caller="svc", kind=KIND_GET_POOL)
    assert [s.charge.ref.subject for s in pools.limits] == ["account", "caller:svc/quota"]


async def test_peek_says_how_long_a_toloka_cooldown_holds_back_the_kind_asked_for(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(settings(ACCOUNT, TASKS))
    await limiter.report_throttled(5.0, kind=KIND_CREATE_TASKS)  # task creation's own cool-down
    await clock.advance_to(T0 + 1.0)
    assert (await limiter.peek(caller="svc", kind=KIND_CREATE_TASKS)).cooldown == pytest.approx(4.0, abs=1e-6)
    assert (await limiter.peek(caller="svc", kind=KIND_GET_POOL)).cooldown == 0.0
    assert (await limiter.peek(caller="svc")).cooldown == 0.0  # without a kind: the account-wide one
    with pytest.raises(RateLimited) as refused:
        await limiter.acquire(KIND_CREATE_TASKS, tasks=1, call=Call(caller="svc", deadline=clock.now()))
    assert refused.value.retry_after == pytest.approx(4.0, abs=1e-6)
    await limiter.report_throttled(2.0, kind=KIND_GET_POOL)  # account-wide
    assert (await limiter.peek(caller="svc")).cooldown == pytest.approx(2.0, abs=1e-6)
    assert (await limiter.peek(caller="svc", kind=KIND_CREATE_TASKS)).cooldown == pytest.approx(4.0, abs=1e-6)


async def test_a_task_counted_limit_reports_tasks_left(make_limiter: MakeLimiter, clock: ManualClock) -> None:
    limiter = make_limiter(settings(TASKS))
    await limiter.acquire(KIND_CREATE_TASKS, tasks=60, call=Call(caller="svc"))
    assert by_name(await limiter.peek(caller="svc")) == {"tasks_per_minute": (40, 0.0)}
    await limiter.acquire(KIND_CREATE_TASKS, tasks=40, call=Call(caller="svc"))
    with pytest.raises(RateLimited) as refused:
        await limiter.acquire(KIND_CREATE_TASKS, tasks=1, call=Call(caller="svc", deadline=clock.now()))
    left, next_unit_in = by_name(await limiter.peek(caller="svc"))["tasks_per_minute"]
    assert left == 0 and next_unit_in == pytest.approx(refused.value.retry_after, abs=1e-6)


async def test_the_remaining_gauge_holds_global_limits_only_and_reads_0_after_a_refusal(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(settings(ACCOUNT, TASKS, quota=(QUOTA,)))
    await limiter.acquire(KIND_CREATE_TASKS, tasks=30, call=Call(caller="svc"))
    assert limiter.stats.remaining == {"global/account": 9, "global/tasks_per_minute": 70}
    with pytest.raises(RateLimited):  # 101 tasks never fit in 100: that says nothing of what is left
        await limiter.acquire(KIND_CREATE_TASKS, tasks=101, call=Call(caller="svc", deadline=clock.now()))
    assert limiter.stats.remaining == {"global/account": 9, "global/tasks_per_minute": 70}
    with pytest.raises(RateLimited):  # 71 do not fit now
        await limiter.acquire(KIND_CREATE_TASKS, tasks=71, call=Call(caller="svc", deadline=clock.now()))
    assert limiter.stats.remaining == {"global/account": 9, "global/tasks_per_minute": 0}


async def test_a_shadow_limit_never_refuses_and_counts_exactly_what_it_would_have_refused(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(settings(ACCOUNT, TRIAL))
    calls = [Call(caller="svc") for _ in range(5)]
    for call in calls:
        await limiter.acquire(KIND_GET_POOL, tasks=1, call=call)  # never refused
    await limiter.acquire(KIND_CREATE_TASKS, tasks=1, call=Call(caller="svc"))  # the trial does not count it
    assert [c.shadow_refusals for c in calls] == [[], [], ["trial"], ["trial"], ["trial"]]
    assert limiter.stats.shadow_refused == {("global/trial", KIND_GET_POOL): 3}
    assert limiter.stats.refused == {}
    assert limiter.stats.remaining == {"global/account": 4, "global/trial": 0}
    trial = next(s for s in (await limiter.peek(caller="svc")).limits if s.charge.ref.name == "trial")
    assert trial.charge.shadow and trial.remaining == 0
    # 5 counted in T0's bucket, capacity 2: one more fits once that bucket leaves, at T0 + 1.01 s.
    assert trial.next_unit_in == pytest.approx(1.01, abs=1e-6)
    await clock.advance_to(T0 + 1.01)
    fresh = Call(caller="svc")
    await limiter.acquire(KIND_GET_POOL, tasks=1, call=fresh)
    assert fresh.shadow_refusals == []


async def test_a_shadow_limit_counts_only_what_it_would_have_admitted_when_demand_stays_over_it(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(settings(ACCOUNT, TRIAL))  # the trial: 2 get_pool per second

    async def burst(at: float, n: int) -> list[bool]:
        await clock.advance_to(T0 + at)
        calls = [Call(caller="svc") for _ in range(n)]
        for call in calls:
            await limiter.acquire(KIND_GET_POOL, tasks=1, call=call)
        return [bool(call.shadow_refusals) for call in calls]

    assert await burst(0.0, 2) == [False, False]
    assert await burst(0.5, 2) == [True, True]  # enforced, it refuses both: they are not counted in it
    # T0's two have left the window; the two it would have refused were never in it.
    assert await burst(1.01, 2) == [False, False]
    assert limiter.stats.shadow_refused == {("global/trial", KIND_GET_POOL): 2}
    # Its bucket (10 ms from T0 + 1.01 s) leaves the 101-bucket span at T0 + 2.02 s.
    assert by_name(await limiter.peek(caller="svc"))["trial"] == (0, pytest.approx(1.01, abs=1e-6))


async def test_a_shadow_limit_reports_what_it_would_have_refused_on_the_rate_limit_service_path(
    make_limiter: MakeLimiter,
) -> None:
    limiter = make_limiter(settings(ACCOUNT, quota=(TRIAL,)))
    decisions = [await limiter.decide_hits([Hit(KIND_GET_POOL, caller="svc")]) for _ in range(3)]
    assert all(d.admitted for d in decisions)
    assert [[r.subject for r in d.shadow_refusals] for d in decisions] == [[], [], ["caller:svc/trial"]]


async def test_peek_reads_the_local_share_and_says_degraded_while_redis_is_cut_off(
    redis_url: str, clock: ManualClock
) -> None:
    cut = Partition(connect_redis(redis_url))
    limits = RateLimitSettings(
        limits=(ACCOUNT,), key_prefix=f"tgw-{uuid.uuid4().hex[:8]}", degraded_share=0.5
    )
    limiter = FallbackRateLimiter(
        primary=RedisRateLimiter(
            shared=SharedRedis(cast(AnyRedis, cut), clock=clock.never_waking()),
            settings=limits,
            clock=clock,
            server_time=clock.now,
        ),
        fallback=LocalRateLimiter(settings=limits, clock=clock, share=0.5),
    )
    try:
        await limiter.acquire(KIND_GET_POOL, tasks=1, call=Call(caller="svc"))
        on_redis = await limiter.peek(caller="svc")
        assert (on_redis.backend, on_redis.degraded, by_name(on_redis)) == (
            "redis",
            False,
            {"account": (9, 0.0)},
        )
        cut.down = True
        local = await limiter.peek(caller="svc")
        # The local share is 5 of 10, seeded from the 9 Redis said were left: min(5, floor(0.5 * 9)) = 4.
        assert (local.backend, local.degraded, by_name(local)) == ("local", True, {"account": (4, 0.0)})
        admitted, retry_after = await flood(limiter, clock)
        assert admitted == 4
        assert by_name(await limiter.peek(caller="svc")) == {
            "account": (0, pytest.approx(retry_after, abs=1e-6))
        }
    finally:
        await limiter.close()
        await cut.client.aclose()
