"""One behavioural contract, run against the Redis backend and the in-process backend."""

from __future__ import annotations

import bisect
import math
import random

import pytest

from gateway.call import Call
from gateway.errors import RateLimited
from gateway.limit_spec import LimitSpec
from gateway.ratelimit import AdmissionLimiter
from gateway.ratelimit.decision import MAX_COOLDOWN_S
from gateway.request_kinds import (
    ALL_KINDS,
    KIND_CREATE_TASKS,
    KIND_GET_OPERATION,
    KIND_GET_OPERATION_LOG,
    KIND_GET_POOL,
    KIND_POOL_ACTION,
    KIND_UPDATE_POOL_OVERLAP,
)
from gateway.settings import RateLimitSettings
from tests.ratelimit.conftest import T0, MakeLimiter
from tests.support.clock import ManualClock


def settings(*limits: LimitSpec, **kw: object) -> RateLimitSettings:
    return RateLimitSettings(limits=limits, **kw)  # type: ignore[arg-type]


def ten_per_second() -> LimitSpec:
    return LimitSpec("ten_per_s", (ALL_KINDS,), 10, 1.0)


def now_call(clock: ManualClock, caller: str = "anonymous", within: float = 0.0) -> Call:
    return Call(caller=caller, deadline=clock.now() + within)


async def admitted(limiter: AdmissionLimiter, call: Call, kind: str = KIND_GET_POOL, tasks: int = 1) -> bool:
    try:
        await limiter.acquire(kind, tasks=tasks, call=call)
    except RateLimited:
        return False
    return True


async def test_eleventh_request_is_refused_with_retry_after_until_oldest_bucket_leaves_when_ten_per_window(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(settings(ten_per_second()))
    for i in range(10):
        await clock.advance_to(T0 + i * 0.05)
        assert await admitted(limiter, now_call(clock))
    await clock.advance_to(T0 + 0.6)
    with pytest.raises(RateLimited) as refused:
        await limiter.acquire(KIND_GET_POOL, tasks=1, call=now_call(clock))
    # The bucket of the first admission (10 ms wide, T0) stops being counted at T0 + 1.01 s.
    assert refused.value.retry_after == pytest.approx(0.41, abs=1e-6)
    assert [q.subject for q in refused.value.quota] == ["ten_per_s"]
    assert refused.value.metadata["limit"] == "ten_per_s"
    await clock.advance_to(T0 + 1.0099)
    assert not await admitted(limiter, now_call(clock))
    await clock.advance_to(T0 + 1.01)
    assert await admitted(limiter, now_call(clock))
    assert limiter.stats.admitted["global/ten_per_s"] == 11
    assert limiter.stats.refused["global/ten_per_s"] == 2
    assert limiter.stats.remaining["global/ten_per_s"] == 0


async def test_burst_across_a_window_edge_is_held_to_capacity_when_fixed_window_would_double_it(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(settings(ten_per_second()))
    await clock.advance_to(T0 + 0.95)
    assert [await admitted(limiter, now_call(clock)) for _ in range(10)] == [True] * 10
    for step in range(20):  # the next clock-aligned window: all still inside (t - 1 s, t]
        await clock.advance_to(T0 + 1.0 + step * 0.045)
        assert not await admitted(limiter, now_call(clock))
    await clock.advance_to(T0 + 0.95 + 1.01)
    assert [await admitted(limiter, now_call(clock)) for _ in range(11)] == [True] * 10 + [False]


async def test_no_sliding_window_exceeds_capacity_and_utilisation_is_high_when_demand_is_random(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    capacity, period = 50, 1.0
    limiter = make_limiter(settings(LimitSpec("tasks_per_s", (ALL_KINDS,), capacity, period, "tasks")))
    rng = random.Random(7)
    times: list[float] = []
    costs: list[int] = []
    t = T0
    while t < T0 + 10 * period:
        t += rng.expovariate(200.0)  # demand ~4x the limit
        await clock.advance_to(t)
        tasks = rng.randint(1, 4)
        if await admitted(limiter, now_call(clock), tasks=tasks):
            times.append(t)
            costs.append(tasks)
    for i, start in enumerate(times):
        end = bisect.bisect_left(times, start + period)
        assert sum(costs[i:end]) <= capacity, f"window at {start - T0:.4f}s"
    steady = sum(c for ts, c in zip(times, costs, strict=True) if ts >= T0 + 2 * period)
    assert steady / (capacity * 8) >= 0.98


async def test_global_and_caller_limits_are_debited_together_or_not_at_all(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(
        settings(
            LimitSpec("create_tasks_global", (KIND_CREATE_TASKS,), 2, 1.0),
            caller_quotas={"alice": (LimitSpec("alice_all", (ALL_KINDS,), 5, 1.0),)},
        )
    )
    alice = now_call(clock, "alice")
    assert [await admitted(limiter, alice, KIND_CREATE_TASKS) for _ in range(5)] == [True] * 2 + [False] * 3
    # The three refusals (by the global limit) took nothing from alice's quota: 3 more fit.
    assert [await admitted(limiter, alice, KIND_GET_POOL) for _ in range(4)] == [True] * 3 + [False]
    with pytest.raises(RateLimited) as refused:
        await limiter.acquire(KIND_GET_POOL, tasks=1, call=alice)
    assert [q.subject for q in refused.value.quota] == ["caller:alice/alice_all"]
    assert refused.value.metadata["caller"] == "alice"


async def test_refusal_by_a_caller_quota_leaves_the_global_limit_untouched(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(
        settings(
            LimitSpec("account", (ALL_KINDS,), 4, 1.0),
            caller_quotas={"bob": (LimitSpec("bob_create", (KIND_CREATE_TASKS,), 1, 1.0),)},
        )
    )
    bob = now_call(clock, "bob")
    assert [await admitted(limiter, bob, KIND_CREATE_TASKS) for _ in range(4)] == [True, False, False, False]
    carol = now_call(clock, "carol")
    assert [await admitted(limiter, carol) for _ in range(4)] == [True, True, True, False]


async def test_tasks_unit_counts_tasks_and_requests_unit_counts_requests(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(
        settings(
            LimitSpec("tasks_per_min", (KIND_CREATE_TASKS,), 100, 60.0, "tasks"),
            LimitSpec("requests_per_min", (KIND_CREATE_TASKS,), 3, 60.0),
        )
    )
    call = now_call(clock)
    assert await admitted(limiter, call, KIND_CREATE_TASKS, tasks=60)
    with pytest.raises(RateLimited) as refused:
        await limiter.acquire(KIND_CREATE_TASKS, tasks=50, call=call)
    assert [q.subject for q in refused.value.quota] == ["tasks_per_min"]
    assert await admitted(limiter, call, KIND_CREATE_TASKS, tasks=40)
    assert limiter.stats.remaining == {"global/tasks_per_min": 0, "global/requests_per_min": 1}
    assert await admitted(limiter, call, KIND_CREATE_TASKS, tasks=0) is False  # 0 tasks still cost 1


async def test_request_costing_more_than_capacity_is_refused_without_retry_after(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(settings(LimitSpec("tasks", (KIND_CREATE_TASKS,), 100, 60.0, "tasks")))
    with pytest.raises(RateLimited) as refused:
        await limiter.acquire(KIND_CREATE_TASKS, tasks=101, call=Call(deadline=clock.now() + 1000))
    assert refused.value.retry_after is None
    assert clock.slept == 0


async def test_unnamed_callers_each_get_the_default_quota_and_named_callers_their_own(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(
        settings(
            default_caller_quota=(LimitSpec("per_caller", (ALL_KINDS,), 2, 1.0),),
            caller_quotas={"vip": (LimitSpec("vip", (ALL_KINDS,), 5, 1.0),)},
        )
    )
    for caller in ("x", "y"):
        results = [await admitted(limiter, now_call(clock, caller)) for _ in range(3)]
        assert results == [True, True, False]
    with pytest.raises(RateLimited) as refused:
        await limiter.acquire(KIND_GET_POOL, tasks=1, call=now_call(clock, "x"))
    assert refused.value.quota[0].subject == "caller:x/per_caller"
    assert [await admitted(limiter, now_call(clock, "vip")) for _ in range(6)] == [True] * 5 + [False]


async def test_wait_admits_when_capacity_returns_before_the_deadline(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(settings(LimitSpec("one_per_s", (ALL_KINDS,), 1, 1.0)))
    assert await admitted(limiter, now_call(clock))
    decision = await limiter.admit(KIND_GET_POOL, tasks=1, call=now_call(clock, within=2.0))
    assert decision.admitted
    assert clock.now() - T0 == pytest.approx(1.01, abs=0.002)
    assert limiter.stats.waited["global/one_per_s"] == 1


async def test_refusal_is_immediate_when_capacity_returns_after_the_deadline(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(settings(LimitSpec("one_per_s", (ALL_KINDS,), 1, 1.0)))
    assert await admitted(limiter, now_call(clock))
    with pytest.raises(RateLimited) as refused:
        await limiter.acquire(KIND_GET_POOL, tasks=1, call=now_call(clock, within=0.5))
    assert refused.value.retry_after == pytest.approx(1.01, abs=1e-6)
    assert clock.slept == 0


async def test_refusal_when_capacity_returns_after_the_maximum_wait_without_deadline(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(settings(LimitSpec("one_per_s", (ALL_KINDS,), 1, 1.0), max_wait_s=0.5))
    assert await admitted(limiter, Call(deadline=None))
    with pytest.raises(RateLimited):
        await limiter.acquire(KIND_GET_POOL, tasks=1, call=Call(deadline=None))
    assert clock.slept == 0


async def test_cooldown_holds_back_requests_until_it_ends_when_toloka_throttled(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(settings(ten_per_second()))
    await limiter.report_throttled(2.0, kind=KIND_GET_POOL)
    with pytest.raises(RateLimited) as refused:
        await limiter.acquire(KIND_GET_POOL, tasks=1, call=now_call(clock, within=1.0))
    assert refused.value.retry_after == pytest.approx(2.0, abs=1e-6)
    assert [q.subject for q in refused.value.quota] == ["toloka"]
    await limiter.report_throttled(0.5, kind=KIND_GET_POOL)  # a shorter report never shortens the cool-down
    await limiter.acquire(KIND_GET_POOL, tasks=1, call=now_call(clock, within=3.0))
    assert clock.now() - T0 == pytest.approx(2.0, abs=0.002)
    assert limiter.stats.waited["cooldown"] == 1


def all_kinds_one_each() -> RateLimitSettings:
    return settings(LimitSpec("many_per_s", (ALL_KINDS,), 1000, 1.0))


async def test_cooldown_holds_back_only_that_kind_when_toloka_throttled_a_kind_with_its_own_limit(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(all_kinds_one_each())
    await limiter.report_throttled(2.0, kind=KIND_CREATE_TASKS)
    with pytest.raises(RateLimited) as refused:
        await limiter.acquire(KIND_CREATE_TASKS, tasks=10, call=now_call(clock))
    assert refused.value.retry_after == pytest.approx(2.0, abs=1e-6)
    assert [q.subject for q in refused.value.quota] == ["toloka"]
    for kind in (KIND_GET_OPERATION, KIND_GET_POOL, KIND_POOL_ACTION, KIND_UPDATE_POOL_OVERLAP):
        assert await admitted(limiter, now_call(clock), kind)  # other kinds go on
    await limiter.report_throttled(3.0, kind=KIND_UPDATE_POOL_OVERLAP)
    assert not await admitted(limiter, now_call(clock), KIND_UPDATE_POOL_OVERLAP)
    assert await admitted(limiter, now_call(clock), KIND_GET_OPERATION)
    await clock.advance(2.0)
    assert await admitted(limiter, now_call(clock), KIND_CREATE_TASKS)
    assert not await admitted(limiter, now_call(clock), KIND_UPDATE_POOL_OVERLAP)  # its own, 3 s


@pytest.mark.parametrize(
    "throttled_kind", [KIND_GET_OPERATION, KIND_GET_OPERATION_LOG, KIND_GET_POOL, KIND_POOL_ACTION]
)
async def test_cooldown_holds_back_every_kind_when_toloka_throttled_a_kind_without_its_own_limit(
    make_limiter: MakeLimiter, clock: ManualClock, throttled_kind: str
) -> None:
    limiter = make_limiter(all_kinds_one_each())
    await limiter.report_throttled(1.5, kind=throttled_kind)
    for kind in (KIND_CREATE_TASKS, KIND_UPDATE_POOL_OVERLAP, KIND_GET_OPERATION, KIND_GET_POOL):
        with pytest.raises(RateLimited) as refused:
            await limiter.acquire(kind, tasks=1, call=now_call(clock))
        assert refused.value.retry_after == pytest.approx(1.5, abs=1e-6)
    await clock.advance(1.5)
    assert await admitted(limiter, now_call(clock), KIND_CREATE_TASKS)


async def test_cooldown_is_capped_when_toloka_asks_for_a_long_retry_after(
    make_limiter: MakeLimiter, clock: ManualClock
) -> None:
    limiter = make_limiter(all_kinds_one_each())
    await limiter.report_throttled(3600.0, kind=KIND_UPDATE_POOL_OVERLAP)
    await limiter.report_throttled(1e12, kind=KIND_GET_POOL)
    for kind in (KIND_UPDATE_POOL_OVERLAP, KIND_CREATE_TASKS):
        with pytest.raises(RateLimited) as refused:
            await limiter.acquire(kind, tasks=1, call=now_call(clock))
        assert refused.value.retry_after == pytest.approx(MAX_COOLDOWN_S, abs=1e-6)
    await clock.advance(MAX_COOLDOWN_S)
    assert await admitted(limiter, now_call(clock), KIND_UPDATE_POOL_OVERLAP)
    assert await admitted(limiter, now_call(clock), KIND_CREATE_TASKS)


@pytest.mark.parametrize("retry_after", [math.inf, -math.inf, math.nan, -1.0, 0.0])
async def test_cooldown_is_not_started_or_changed_when_retry_after_is_not_finite_or_negative(
    make_limiter: MakeLimiter, clock: ManualClock, retry_after: float
) -> None:
    limiter = make_limiter(all_kinds_one_each())
    for kind in (KIND_CREATE_TASKS, KIND_GET_POOL):
        await limiter.report_throttled(retry_after, kind=kind)
        assert await admitted(limiter, now_call(clock), kind)
    await limiter.report_throttled(1.0, kind=KIND_GET_POOL)
    await limiter.report_throttled(retry_after, kind=KIND_GET_POOL)  # neither extends nor ends it
    with pytest.raises(RateLimited) as refused:
        await limiter.acquire(KIND_GET_POOL, tasks=1, call=now_call(clock))
    assert refused.value.retry_after == pytest.approx(1.0, abs=1e-6)
