"""Rate-limit service benchmark: ShouldRateLimit over one gRPC connection to a gateway process,
against the gateway's own in-process decision path (`decide_hits` on the same Redis), same run.

Both decide the shape of a create_tasks request (three global limits and a caller quota, never
full), so every decision is one EVALSHA that admits. Figures: decisions/s at 32 in flight, and
latency percentiles at a paced 300 (Toloka's whole account limit) and 1,000 decisions/s (the
target: p99 under 2 ms; Envoy's filter times out at 20 ms). `python -m bench.rls_bench` prints them as JSON.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway import event_loop
from gateway.limit_spec import LimitSpec
from gateway.ratelimit import AdmissionLimiter, build_rate_limiter
from gateway.request_kinds import ALL_KINDS, KIND_CREATE_TASKS
from gateway.settings import RateLimitSettings
from gateway.shared_state import SharedRedis, connect_redis
from tests.support.gateway_harness import GatewayProcess
from tests.support.redis_servers import redis_server

BIG = 10**12
THROUGHPUT_DECISIONS = 5_000
CONCURRENCY = 32
PACED_RATES = (300, 1_000)  # Toloka's whole account allows 300 requests/s; the target is at 1,000
PACED_SECONDS = 3.0
CONFIG = f"""
[rate_limits]
limits = [
  {{ name = "create_tasks_per_minute", kinds = ["create_tasks"], capacity = {BIG}, period = "1m", unit = "tasks" }},
  {{ name = "create_tasks_per_day", kinds = ["create_tasks"], capacity = {BIG}, period = "1d", unit = "tasks" }},
  {{ name = "account_per_second", capacity = {BIG}, period = "1s" }},
]
default_caller = [{{ name = "caller_per_minute", capacity = {BIG}, period = "1m" }}]
"""
ENVOY_RATELIMIT_DESIGN = (
    "envoyproxy/ratelimit (Go) counts fixed windows: per descriptor one INCRBY and one EXPIRE, "
    "pipelined, one round trip per request; a caller can spend up to 2x a limit across a window "
    "edge, and several descriptors are counted independently (no all-or-none). This service: one "
    "EVALSHA per ShouldRateLimit over every descriptor, sliding windows of 100 buckets (never above "
    "the limit in any window, >= 99% usable), all or none, Redis TIME as the clock."
)

Decide = Callable[[], Awaitable[Any]]


def _settings() -> RateLimitSettings:
    return RateLimitSettings(
        limits=(
            LimitSpec("create_tasks_per_minute", (KIND_CREATE_TASKS,), BIG, 60.0, "tasks"),
            LimitSpec("create_tasks_per_day", (KIND_CREATE_TASKS,), BIG, 86400.0, "tasks"),
            LimitSpec("account_per_second", (ALL_KINDS,), BIG, 1.0),
        ),
        default_caller_quota=(LimitSpec("caller_per_minute", (ALL_KINDS,), BIG, 60.0),),
    )


def _request() -> Any:
    descriptor = ratelimit_pb2.RateLimitDescriptor(
        entries=[
            ratelimit_pb2.RateLimitDescriptor.Entry(key="kind", value=KIND_CREATE_TASKS),
            ratelimit_pb2.RateLimitDescriptor.Entry(key="caller", value="bench"),
        ]
    )
    return rls_pb2.RateLimitRequest(domain="toloka", descriptors=[descriptor], hits_addend=100)


async def _throughput(decide: Decide) -> float:
    left = THROUGHPUT_DECISIONS

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await decide()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return THROUGHPUT_DECISIONS / (time.perf_counter() - started)


async def _paced(decide: Decide, rate: int) -> dict[str, float]:
    """Open loop: decision i starts at i / rate (late ones at once); latency from its start to its
    answer."""
    latencies: list[float] = []
    n = int(rate * PACED_SECONDS)

    async def one() -> None:
        began = time.perf_counter()
        await decide()
        latencies.append(time.perf_counter() - began)

    running = []
    start = time.perf_counter()
    for i in range(n):
        await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        running.append(asyncio.create_task(one()))
    await asyncio.gather(*running)
    achieved = n / (time.perf_counter() - start)
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "decisions_per_s": round(achieved),
        "p50_ms": round(cuts[49] * 1000, 3),
        "p99_ms": round(cuts[98] * 1000, 3),
        "max_ms": round(max(latencies) * 1000, 3),
    }


def _paths(limiter: AdmissionLimiter, channel: grpc.aio.Channel) -> dict[str, Decide]:
    """The three things timed: the in-process decision, ShouldRateLimit, the gRPC floor."""
    stub = rls_pb2_grpc.RateLimitServiceStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    request, check = _request(), health_pb2.HealthCheckRequest()

    async def in_process() -> Any:  # what a TolokaGateway call's admission runs
        return await limiter.decide(KIND_CREATE_TASKS, tasks=100, caller="bench")

    async def should_rate_limit() -> Any:
        return await stub.ShouldRateLimit(request)

    async def grpc_floor() -> Any:  # the same connection and server, no decision
        return await health.Check(check)

    return {"in_process": in_process, "should_rate_limit": should_rate_limit, "grpc_floor": grpc_floor}


async def _time(paths: dict[str, Decide], shared: SharedRedis) -> dict[str, dict[str, Any]]:
    """Per path: calls/s at 32 in flight, EVALSHAs per call, and the paced latencies."""
    for call in paths.values():  # warm: scripts loaded, connections open
        await asyncio.gather(*(call() for _ in range(200)))
    found: dict[str, dict[str, Any]] = {}
    for name, call in paths.items():
        before = await _evalsha_calls(shared)
        rate = await _throughput(call)
        evalsha = (await _evalsha_calls(shared) - before) / THROUGHPUT_DECISIONS
        found[name] = {"per_s_32_in_flight": round(rate), "evalsha_per_call": round(evalsha, 3)}
    for name, call in paths.items():
        for rate in PACED_RATES:
            found[name][f"paced_{rate}_per_s"] = await _paced(call, rate)
    return found


def _report(found: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rls, base, floor = found["should_rate_limit"], found["in_process"], found["grpc_floor"]
    paced = [f"paced_{rate}_per_s" for rate in PACED_RATES]
    return {
        "baseline": "the in-process decide() a TolokaGateway call's admission runs (same Redis, same "
        "limits), and a Health/Check on the same connection (the gRPC floor), measured in this run",
        **found,
        "throughput_ratio_rls_to_in_process": round(
            rls["per_s_32_in_flight"] / base["per_s_32_in_flight"], 2
        ),
        "throughput_ratio_rls_to_grpc_floor": round(
            rls["per_s_32_in_flight"] / floor["per_s_32_in_flight"], 2
        ),
        "p99_ratio_rls_to_in_process": {k: round(rls[k]["p99_ms"] / base[k]["p99_ms"], 2) for k in paced},
        "p99_ratio_rls_to_grpc_floor": {k: round(rls[k]["p99_ms"] / floor[k]["p99_ms"], 2) for k in paced},
        "p99_target_ms_at_1000_per_s": 2.0,
        "p99_under_target": rls["paced_1000_per_s"]["p99_ms"] < 2.0,
        "envoyproxy_ratelimit_design": ENVOY_RATELIMIT_DESIGN,
    }


async def _measure(url: str, workdir: Path) -> dict[str, Any]:
    shared = SharedRedis(connect_redis(url))
    limiter = build_rate_limiter(_settings(), shared)
    config = workdir / "gateway.toml"
    config.write_text(CONFIG)
    # The service never calls Toloka: an address nothing listens on keeps an emulator's work out.
    env = {"GATEWAY_CONFIG": str(config), "REDIS_URL": url, "TOLOKA_URL": "http://127.0.0.1:9"}
    gateway = GatewayProcess(env={**env, "TOLOKA_API_KEY": "bench-key-not-secret"}).start(workdir)
    try:
        await gateway.wait_serving()
        async with grpc.aio.insecure_channel(gateway.target) as channel:
            return _report(await _time(_paths(limiter, channel), shared))
    except grpc.aio.AioRpcError as e:
        raise RuntimeError(f"the gateway failed a call ({e.code().name}):\n{gateway.logs()[-3000:]}") from e
    finally:
        gateway.stop()
        await shared.close()


async def _evalsha_calls(shared: SharedRedis) -> int:
    info = await shared.redis.info("commandstats")
    return sum(int(v["calls"]) for k, v in info.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))


def run() -> dict[str, Any]:
    """The figures, as a dict (see the module docstring)."""
    with redis_server() as server, tempfile.TemporaryDirectory(prefix="rls-bench-") as workdir:
        return event_loop.run(_measure(server.url, Path(workdir)))  # uvloop, as the gateway runs


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
