"""ShouldRateLimit over real gRPC against a real gateway on a real Redis: mapping, answers, metrics."""

from __future__ import annotations

from typing import Any

import grpc
from envoy.service.ratelimit.v3 import rls_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from gateway.rls import RLS_SERVICE_NAME
from tests.rls.conftest import LIMITS, StartGateway, request, rls
from tests.support.redis_servers import RedisServer

Response = rls_pb2.RateLimitResponse
OK, OVER = Response.OK, Response.OVER_LIMIT


def codes(reply: Any) -> list[int]:
    return [s.code for s in reply.statuses]


def sample(gw: Any, name: str, **labels: str) -> float:
    value = gw.gateway.metrics.registry.get_sample_value(f"toloka_gateway_{name}", labels)
    return 0.0 if value is None else float(value)


async def test_reflection_lists_the_rate_limit_service_beside_the_gateway(make_gateway: StartGateway) -> None:
    gw = await make_gateway()
    stub = reflection_pb2_grpc.ServerReflectionStub(gw.channel)
    replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = [s.name async for reply in replies for s in reply.list_services_response.service]
    assert RLS_SERVICE_NAME in names and "toloka.gateway.v1.TolokaGateway" in names


async def test_sixth_request_is_over_limit_with_the_wait_until_the_window_frees_room(
    make_gateway: StartGateway, redis_url: str
) -> None:
    gw = await make_gateway(redis_url=redis_url)
    replies = [await rls(gw).ShouldRateLimit(request({"kind": "get_pool"})) for _ in range(6)]
    assert [r.overall_code for r in replies] == [OK] * 5 + [OVER]
    assert [r.statuses[0].limit_remaining for r in replies[:5]] == [4, 3, 2, 1, 0]
    first, over = replies[0].statuses[0], replies[5].statuses[0]
    assert (first.current_limit.name, first.current_limit.requests_per_unit) == ("account", 5)
    assert first.current_limit.unit == Response.RateLimit.MINUTE
    # The next unit frees when the first admission's 0.6 s bucket leaves the 101-bucket span.
    assert 59.0 < first.duration_until_reset.ToTimedelta().total_seconds() <= 60.6
    assert over.code == OVER and over.limit_remaining == 0
    assert 59.0 < over.duration_until_reset.ToTimedelta().total_seconds() <= 60.6
    assert sample(gw, "rls_decisions_total", domain="toloka", kind="other", code="OVER_LIMIT") == 1
    assert sample(gw, "rls_near_limit_total", domain="toloka", kind="other") == 2  # 4 and 5 of 5 used


async def test_hits_addend_spends_a_task_counted_limit_in_tasks_and_the_account_by_one(
    make_gateway: StartGateway, redis_url: str
) -> None:
    gw = await make_gateway(redis_url=redis_url)
    seven = await rls(gw).ShouldRateLimit(request({"kind": "create_tasks"}, hits=7))
    assert (seven.overall_code, seven.statuses[0].current_limit.name) == (OK, "tasks")
    assert seven.statuses[0].limit_remaining == 3
    four = await rls(gw).ShouldRateLimit(request({"kind": "create_tasks", "hits": 4}, hits=1))
    assert four.overall_code == OVER and four.statuses[0].current_limit.name == "tasks"
    account = await rls(gw).ShouldRateLimit(request({"kind": "get_pool"}))
    assert account.statuses[0].limit_remaining == 3  # 7 tasks cost the account one request


async def test_descriptors_of_one_request_are_admitted_all_or_none(
    make_gateway: StartGateway, redis_url: str
) -> None:
    gw = await make_gateway(redis_url=redis_url)
    reply = await rls(gw).ShouldRateLimit(
        request({"kind": "get_pool"}, {"kind": "create_tasks", "hits": 11}, {"kind": "list_tasks"})
    )
    assert (reply.overall_code, codes(reply)) == (OVER, [OK, OVER, OK])
    after = await rls(gw).ShouldRateLimit(request({"kind": "get_pool"}))
    assert after.statuses[0].limit_remaining == 4  # the refused request debited nothing


async def test_caller_entry_applies_that_callers_quota_too(
    make_gateway: StartGateway, redis_url: str
) -> None:
    gw = await make_gateway(redis_url=redis_url)
    mine = [await rls(gw).ShouldRateLimit(request({"kind": "get_pool", "caller": "svc"})) for _ in range(3)]
    assert [r.overall_code for r in mine] == [OK, OK, OVER]
    assert mine[2].statuses[0].current_limit.name == "caller:svc/svc_quota"
    anonymous = await rls(gw).ShouldRateLimit(request({"kind": "get_pool"}))
    assert (anonymous.overall_code, anonymous.statuses[0].limit_remaining) == (OK, 2)


async def test_another_domain_is_answered_ok_without_spending_anything(
    make_gateway: StartGateway, redis_url: str
) -> None:
    gw = await make_gateway(redis_url=redis_url)
    for _ in range(7):
        reply = await rls(gw).ShouldRateLimit(request({"kind": "get_pool"}, {"kind": "x"}, domain="web"))
        assert (reply.overall_code, codes(reply)) == (OK, [OK, OK])
        assert not reply.statuses[0].HasField("current_limit")
    empty = await rls(gw).ShouldRateLimit(request())
    assert (empty.overall_code, len(empty.statuses)) == (OK, 0)
    ours = await rls(gw).ShouldRateLimit(request({"kind": "get_pool"}))
    assert ours.statuses[0].limit_remaining == 4
    assert sample(gw, "rls_decisions_total", domain="other", kind="other", code="OK") == 14


async def test_configured_domain_and_response_headers_when_asked(
    make_gateway: StartGateway, redis_url: str
) -> None:
    gw = await make_gateway('[rls]\ndomain = "egress"\nresponse_headers = true\n', redis_url=redis_url)
    for _ in range(5):
        await rls(gw).ShouldRateLimit(request({"kind": "get_pool"}, domain="egress"))
    over = await rls(gw).ShouldRateLimit(request({"kind": "get_pool"}, domain="egress"))
    headers = {h.key: h.value for h in over.response_headers_to_add}
    assert over.overall_code == OVER
    assert {k: headers[k] for k in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-policy")} == {
        "ratelimit-limit": "5",
        "ratelimit-remaining": "0",
        "ratelimit-policy": "5;w=60",
    }
    assert (
        59 <= int(headers["ratelimit-reset"]) <= 61 and headers["retry-after"] == headers["ratelimit-reset"]
    )
    plain = await make_gateway(redis_url=redis_url)
    assert not (await rls(plain).ShouldRateLimit(request({"kind": "get_pool"}))).response_headers_to_add


async def test_shadow_limit_admits_and_counts_what_it_would_have_refused(
    make_gateway: StartGateway, redis_url: str
) -> None:
    gw = await make_gateway('[rls]\nshadow_limits = ["svc_quota"]\n', redis_url=redis_url)
    replies = [
        await rls(gw).ShouldRateLimit(request({"kind": "get_pool", "caller": "svc"})) for _ in range(4)
    ]
    assert [r.overall_code for r in replies] == [OK] * 4
    assert replies[3].statuses[0].current_limit.name == "account"  # shadow limits are not reported
    assert sample(gw, "rls_shadow_refusals_total", domain="toloka", limit="svc_quota") == 2
    enforced = await rls(gw).ShouldRateLimit(request({"kind": "get_pool"}))
    assert enforced.statuses[0].limit_remaining == 0  # the account limit counted all of them


async def test_a_limit_with_shadow_true_is_shadow_for_the_mesh_without_being_listed(
    make_gateway: StartGateway, redis_url: str
) -> None:
    shadowed = LIMITS.replace('capacity = 2, period = "1m" }', 'capacity = 2, period = "1m", shadow = true }')
    assert shadowed != LIMITS
    gw = await make_gateway(redis_url=redis_url, limits=shadowed)
    replies = [
        await rls(gw).ShouldRateLimit(request({"kind": "get_pool", "caller": "svc"})) for _ in range(4)
    ]
    assert [r.overall_code for r in replies] == [OK] * 4
    assert replies[3].statuses[0].current_limit.name == "account"  # shadow limits are not reported
    assert sample(gw, "rls_shadow_refusals_total", domain="toloka", limit="svc_quota") == 2
    default = {"account": "default"}  # a one-account gateway's limiter series are labelled `default`
    shadow = sample(gw, "ratelimit_shadow_refusals_total", limit="caller/svc_quota", kind="other", **default)
    assert shadow == 2
    assert sample(gw, "ratelimit_remaining", limit="global/account", **default) == 1  # 4 of 5 by the mesh


async def test_service_is_unimplemented_when_disabled(make_gateway: StartGateway) -> None:
    gw = await make_gateway("[rls]\nenabled = false\n")
    try:
        await rls(gw).ShouldRateLimit(request({"kind": "get_pool"}))
    except grpc.aio.AioRpcError as e:
        assert e.code() == grpc.StatusCode.UNIMPLEMENTED
    else:
        raise AssertionError("the rate-limit service answered while disabled")


async def test_one_redis_round_trip_decides_every_descriptor_of_a_call(
    make_gateway: StartGateway, redis_url: str, redis_proc: RedisServer
) -> None:
    gw = await make_gateway(redis_url=redis_url)
    await rls(gw).ShouldRateLimit(request({"kind": "get_pool"}))  # the script is loaded
    before = _evalsha(redis_proc)
    three = request({"kind": "get_pool"}, {"kind": "create_tasks", "caller": "svc"}, {"kind": "list_tasks"})
    for _ in range(2):
        await rls(gw).ShouldRateLimit(three)
    assert _evalsha(redis_proc) - before == 2


def _evalsha(server: RedisServer) -> int:
    for line in server.cli("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_evalsha:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0
