"""The rate-limit service without Redis: the degraded local share answers, never slower than
Envoy's filter timeout (20 ms), and never open by surprise.

Timings are real time on purpose: what is measured is how long a real gateway makes Envoy wait.
"""

from __future__ import annotations

import time
from typing import Any

from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.limit_spec import LimitSpec
from gateway.ratelimit import FallbackRateLimiter, Hit, build_rate_limiter
from gateway.settings import RateLimitSettings
from gateway.shared_state import SharedRedis, connect_redis
from tests.rls.conftest import StartGateway, request, rls
from tests.support.gateway_harness import InProcessGateway
from tests.support.redis_servers import RedisServer, redis_server

ENVOY_FILTER_TIMEOUT_S = 0.020


async def timed_answers(gw: InProcessGateway, n: int) -> tuple[list[int], float]:
    """n ShouldRateLimit calls, each with Envoy's default timeout as its deadline: codes, slowest."""
    await health_pb2_grpc.HealthStub(gw.channel).Check(health_pb2.HealthCheckRequest())  # connected
    found: list[int] = []
    slowest = 0.0
    for _ in range(n):
        start = time.perf_counter()
        reply: Any = await rls(gw).ShouldRateLimit(
            request({"kind": "get_pool"}), timeout=ENVOY_FILTER_TIMEOUT_S
        )
        slowest = max(slowest, time.perf_counter() - start)
        found.append(reply.overall_code)
    return found, slowest


async def test_local_share_answers_within_the_filter_timeout_when_redis_is_down(
    make_gateway: StartGateway,
) -> None:
    with redis_server() as server:
        gw = await make_gateway(redis_url=server.url)
        server.stop()
        codes, slowest = await timed_answers(gw, 4)
    assert codes == [1, 1, 2, 2]  # OK, OK, then OVER_LIMIT: the local share is 2 of 5
    assert slowest < ENVOY_FILTER_TIMEOUT_S
    assert gw.gateway.degraded


async def test_local_share_answers_within_the_filter_timeout_when_redis_hangs(
    make_gateway: StartGateway, hung_redis_url: str
) -> None:
    gw = await make_gateway(redis_url=hung_redis_url)
    codes, slowest = await timed_answers(gw, 4)
    assert codes == [1, 1, 2, 2]
    assert slowest < ENVOY_FILTER_TIMEOUT_S


async def test_slow_redis_decisions_are_answered_locally_and_still_counted_in_redis(
    make_gateway: StartGateway, slow_redis_url: str, redis_proc: RedisServer
) -> None:
    gw = await make_gateway(redis_url=slow_redis_url)
    connections_before = _connections(redis_proc)
    codes, slowest = await timed_answers(gw, 4)
    assert codes == [1, 1, 2, 2]  # the local share (2 of 5) answered: Redis took 30 ms
    assert slowest < ENVOY_FILTER_TIMEOUT_S
    assert not gw.gateway.degraded  # slow is not down
    # Each Redis decision was left to finish, not cut off: all four reach Redis, on connections
    # kept open (a cancelled command costs its connection, and a reconnect per decision).
    await gw.gateway.limiter.settled()  # type: ignore[union-attr]
    assert redis_proc.cli("HGET", "{tgw}:rl:g:account:60000", "s") == "4"
    # One connection for that HGET, one for the count itself, at most four for the gateway.
    assert _connections(redis_proc) - connections_before <= 2 + 4


def _connections(server: RedisServer) -> int:
    stats = dict(line.split(":", 1) for line in server.cli("INFO", "stats").splitlines() if ":" in line)
    return int(stats["total_connections_received"])


async def test_a_slow_decision_that_redis_refuses_still_leaves_the_local_admission_counted_in_redis(
    slow_redis_url: str, redis_proc: RedisServer
) -> None:
    settings = RateLimitSettings(limits=(LimitSpec("tiny", ("get_pool",), 2, 60.0),), degraded_share=0.5)
    shared = SharedRedis(connect_redis(slow_redis_url))
    limiter = build_rate_limiter(settings, shared)
    assert isinstance(limiter, FallbackRateLimiter)
    try:
        for _ in range(2):  # Redis's window is full
            assert (await limiter.decide_hits([Hit("get_pool")])).admitted
        answered = await limiter.decide_hits([Hit("get_pool")], within_s=0.005)
        assert answered.admitted and answered.backend == "local"  # Redis had not answered in time
        await limiter.close()  # the late refusal, and the write-back it starts
        # Redis refused it, so the local admission was written into Redis: 3 counted, not 2.
        assert redis_proc.cli("HGET", "{tgw}:rl:g:tiny:60000", "s") == "3"
    finally:
        await shared.close()
