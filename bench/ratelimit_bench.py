"""Rate-limiter benchmark: decisions/s, Redis round trips per decision, utilisation, memory.

Runs against a redis-server it spawns (tests.support.redis_servers). `run()` returns the
figures; `python -m bench.ratelimit_bench` prints them as JSON.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import time
from typing import Any

from gateway.call import Call
from gateway.errors import RateLimited
from gateway.limit_spec import LimitSpec
from gateway.ratelimit import AdmissionLimiter, LocalRateLimiter, RedisRateLimiter
from gateway.ratelimit.decision import limit_key
from gateway.request_kinds import ALL_KINDS, KIND_CREATE_TASKS
from gateway.settings import RateLimitSettings
from gateway.shared_state import AnyRedis, SharedRedis, connect_redis
from tests.support.redis_servers import redis_server

ADMISSIONS = 100_000
CONCURRENCY = 32
BIG = 10**12


def _wide_settings() -> RateLimitSettings:
    """The shape of a create_tasks decision (three global limits and a caller quota), never full."""
    return RateLimitSettings(
        limits=(
            LimitSpec("create_tasks_per_minute", (KIND_CREATE_TASKS,), BIG, 60.0, "tasks"),
            LimitSpec("create_tasks_per_day", (KIND_CREATE_TASKS,), BIG, 86400.0, "tasks"),
            LimitSpec("account_per_second", (ALL_KINDS,), BIG, 1.0),
        ),
        default_caller_quota=(LimitSpec("caller_per_minute", (ALL_KINDS,), BIG, 60.0),),
    )


async def _throughput(limiter: AdmissionLimiter, total: int) -> float:
    left = total

    async def worker(n: int) -> None:
        nonlocal left
        call = Call(caller=f"caller-{n % 4}")
        while left > 0:
            left -= 1
            await limiter.acquire(KIND_CREATE_TASKS, tasks=100, call=call)

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(CONCURRENCY)))
    return total / (time.perf_counter() - started)


async def _commandstats(client: AnyRedis) -> dict[str, int]:
    info = await client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()}


async def _saturation(url: str, *, capacity: int, period: float, seconds: float) -> dict[str, float]:
    settings = RateLimitSettings(limits=(LimitSpec("saturated", (ALL_KINDS,), capacity, period),))
    clients = [SharedRedis(connect_redis(url)) for _ in range(4)]
    replicas = [RedisRateLimiter(shared=c, settings=settings) for c in clients]
    times: list[float] = []
    end = time.monotonic() + seconds

    async def worker(limiter: RedisRateLimiter) -> None:
        while time.monotonic() < end:
            try:
                times.append((await limiter.admit(KIND_CREATE_TASKS, tasks=1, call=Call(deadline=end))).at)
            except RateLimited:
                return

    await asyncio.gather(*(worker(r) for r in replicas for _ in range(8)))
    for c in clients:
        await c.close()
    times.sort()
    periods = int(seconds / period)
    in_periods = bisect.bisect_left(times, times[0] + periods * period)
    worst = max(bisect.bisect_left(times, t + period) - i for i, t in enumerate(times))
    return {
        "replicas": len(replicas),
        "capacity": capacity,
        "period_s": period,
        # admitted in the first whole periods from the first admission, over their capacity
        "utilisation": in_periods / (capacity * periods),
        # long-run rate after the first window's burst, over the limit's rate (phase-independent)
        "rate_after_first_window_vs_limit": (len(times) - capacity)
        / ((times[-1] - times[0]) * capacity / period),
        "max_admitted_in_any_window": worst,
    }


async def _run() -> dict[str, Any]:
    settings = _wide_settings()
    local_rate = await _throughput(LocalRateLimiter(settings=settings), ADMISSIONS)
    with redis_server() as server:
        shared = SharedRedis(connect_redis(server.url))
        client = shared.redis
        limiter = RedisRateLimiter(shared=shared, settings=settings)
        await _throughput(limiter, 1_000)  # warm up: load the script, open connections
        await client.config_resetstat()
        redis_rate = await _throughput(limiter, ADMISSIONS)
        stats = await _commandstats(client)
        memory = {}
        for spec in settings.limits:
            memory[spec.name] = await client.memory_usage(limit_key(settings.key_prefix, spec, None))
        quota = settings.default_caller_quota[0]
        memory["caller_per_minute(one caller)"] = await client.memory_usage(
            limit_key(settings.key_prefix, quota, "caller-0")
        )
        saturation = await _saturation(server.url, capacity=200, period=1.0, seconds=5.0)
        await shared.close()
    inside_script = sum(v for k, v in stats.items() if k not in ("evalsha", "info", "config|resetstat"))
    return {
        "decisions": ADMISSIONS,
        "concurrency": CONCURRENCY,
        "limits_per_decision": 4,
        "redis_decisions_per_s": round(redis_rate),
        "local_decisions_per_s": round(local_rate),
        "round_trips_per_decision": stats.get("evalsha", 0) / ADMISSIONS,  # the only command sent
        "commands_run_inside_the_script_per_decision": inside_script / ADMISSIONS,
        "redis_bytes_per_limit_after_100k": memory,
        "saturation": saturation,
    }


def run() -> dict[str, Any]:
    """Run every measurement and return the figures."""
    return asyncio.run(_run())


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
