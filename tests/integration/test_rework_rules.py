"""SetReworkRules / GetReworkRules end to end: real gRPC, real gateway, the emulator over real HTTP.

Emulator seeds (gateway/emulator/state.py): "1" CLOSED auto-accept, "2" OPEN with a GOLDEN_SET
config and a USERS_ASSESSMENT RESTRICTION rework rule (auto_accept_solutions false), "3" ARCHIVED,
"4" CLOSED non-auto-accept.
"""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway import errors
from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.api.toloka.gateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.call import Call
from gateway.clock import SystemClock
from gateway.emulator.faults import Fault
from gateway.emulator.server import EmulatorServer
from gateway.ratelimit import build_rate_limiter
from gateway.rework.pool_lock import build_pool_lock
from gateway.rework.pool_writer import PoolWriter
from gateway.settings import RateLimitSettings, ReworkSettings, TolokaSettings, default_limits
from gateway.shared_state import SharedRedis, connect_redis
from gateway.toloka.client import TolokaClient
from gateway.translate import quality_control as qc
from tests.support.gateway_harness import GatewayProcess, InProcessGateway, rich_status, write_config
from tests.support.redis_servers import free_port


def skill(skill_id: str = "", delta: int = 1, open_pool: bool = True) -> pb.ReworkRule:
    return pb.ReworkRule(
        skill_change=pb.SkillChangeTrigger(skill_id=skill_id), delta=delta, open_pool=open_pool
    )


def restriction(delta: int = 1, open_pool: bool = True) -> pb.ReworkRule:
    return pb.ReworkRule(restriction=pb.RestrictionTrigger(), delta=delta, open_pool=open_pool)


def reject(*conditions: pb.ReworkCondition, delta: int = 1) -> pb.ReworkRule:
    return pb.ReworkRule(
        assessment=pb.AssessmentTrigger(assessment_event=pb.ASSESSMENT_EVENT_REJECT),
        conditions=conditions,
        delta=delta,
        open_pool=True,
    )


def configs(emulator: EmulatorServer, pool_id: str) -> list[dict[str, Any]]:
    return list(emulator.state.pools[pool_id]["quality_control"]["configs"])


def pool_calls(emulator: EmulatorServer, pool_id: str, since: int = 0) -> list[str]:
    """`GET`, `PUT`, `close-for-update`, `open`, ... for the pool, in arrival order."""
    out = []
    for r in emulator.state.requests[since:]:
        if r.path == f"/api/v1/pools/{pool_id}":
            out.append(r.method)
        elif r.path.startswith(f"/api/v1/pools/{pool_id}/"):
            out.append(r.path.rsplit("/", 1)[1])
    return out


async def settle_pool_operations(emulator: EmulatorServer, within_s: float = 5.0) -> None:
    """Wait until every pool operation has finished and taken effect (checked every 10 ms, bounded)."""
    deadline = time.monotonic() + within_s
    while True:
        emulator.state.advance()
        ops = emulator.state.operations.values()
        pending = [o.id for o in ops if o.type.startswith("POOL.") and not o.finished_effects_done]
        if not pending:
            return
        assert time.monotonic() < deadline, f"pool operations still running: {pending}"
        await asyncio.sleep(0.01)


async def set_rules(
    gw: InProcessGateway, pool_id: str, *rules: pb.ReworkRule, **kw: Any
) -> pb.SetReworkRulesResponse:
    req = pb.SetReworkRulesRequest(pool_id=pool_id, rules=rules, **kw)
    resp: pb.SetReworkRulesResponse = await gw.stub.SetReworkRules(req, metadata=gw.md(), timeout=15)
    return resp


async def refused(gw: InProcessGateway, pool_id: str, *rules: pb.ReworkRule, **kw: Any) -> dict[str, Any]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await set_rules(gw, pool_id, *rules, **kw)
    return rich_status(info.value)


# ---- each trigger ------------------------------------------------------------------------------


async def test_skill_change_rule_is_written_as_toloka_json_when_pool_closed(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    resp = await set_rules(gw, "4", skill("2626", delta=1, open_pool=True))
    assert resp.changed and not resp.replayed
    assert list(resp.rules) == [skill("2626")]
    [config] = configs(emulator, "4")
    print("\nskill 2626 quality_control:", emulator.state.pools["4"]["quality_control"])
    assert config["collector_config"]["type"] == "USERS_ASSESSMENT" and config["collector_config"]["uuid"]
    assert config["rules"] == [
        {
            "conditions": [
                {"key": "pool_access_revoked_reason", "operator": "EQ", "value": "SKILL_CHANGE"},
                {"key": "skill_id", "operator": "EQ", "value": "2626"},
            ],
            "action": {"type": "CHANGE_OVERLAP", "parameters": {"delta": 1, "open_pool": True}},
        }
    ]
    assert emulator.state.pools["4"]["status"] == "CLOSED"
    assert "close-for-update" not in pool_calls(emulator, "4") and "open" not in pool_calls(emulator, "4")


async def test_restriction_and_assessment_rules_round_trip_through_get(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    count = pb.ReworkCondition(
        key=pb.CONDITION_KEY_REJECTED_ASSIGNMENTS_COUNT, operator=pb.COMPARISON_OPERATOR_GTE, value=2
    )
    rules = [restriction(delta=2, open_pool=False), reject(count, delta=-1), skill()]
    resp = await set_rules(gw, "4", *rules)
    assert resp.changed
    got = await gw.stub.GetReworkRules(pb.GetReworkRulesRequest(pool_id="4"), metadata=gw.md())
    assert qc.same_rules(got.rules, rules) and qc.same_rules(resp.rules, rules)
    types = [c["collector_config"]["type"] for c in configs(emulator, "4")]
    assert types == ["USERS_ASSESSMENT", "ASSIGNMENTS_ASSESSMENT"]
    assert configs(emulator, "4")[1]["rules"][0]["conditions"] == [
        {"key": "assessment_event", "operator": "EQ", "value": "REJECT"},
        {"key": "rejected_assignments_count", "operator": "GTE", "value": 2},
    ]


# ---- merge, no-op ------------------------------------------------------------------------------


async def test_merge_keeps_golden_set_rule_and_kept_uuid_when_rules_added(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    before = copy.deepcopy(emulator.state.pools["2"])
    golden, users = before["quality_control"]["configs"]
    resp = await set_rules(gw, "2", restriction(), skill("2626"))
    assert resp.changed
    await settle_pool_operations(emulator)
    after = emulator.state.pools["2"]
    new_golden, new_users = after["quality_control"]["configs"]
    assert new_golden == golden  # same rules, same uuid
    assert new_users["collector_config"] == users["collector_config"]  # the kept config keeps its uuid
    assert new_users["rules"][0] == users["rules"][0]
    ignored = {"quality_control", "status", "last_started", "last_stopped", "last_close_reason"}
    assert {k: v for k, v in after.items() if k not in ignored} == {
        k: v for k, v in before.items() if k not in ignored
    }


async def test_no_write_when_rules_equal_in_another_order(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    await set_rules(gw, "4", skill("1"), restriction())
    start = len(emulator.state.requests)
    resp = await set_rules(gw, "4", restriction(), skill("1"))
    assert not resp.changed and qc.same_rules(resp.rules, [skill("1"), restriction()])
    assert pool_calls(emulator, "4", start) == ["GET"]


async def test_no_write_and_pool_stays_open_when_seeded_rules_requested(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    resp = await set_rules(gw, "2", restriction(delta=1, open_pool=True), refuse_if_open=True)
    assert not resp.changed
    assert pool_calls(emulator, "2") == ["GET"]


# ---- open pool dance ---------------------------------------------------------------------------


async def test_open_pool_is_closed_for_update_written_and_reopened(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    resp = await set_rules(gw, "2", skill("7"))
    assert resp.changed and list(resp.rules) == [skill("7")]
    assert pool_calls(emulator, "2") == ["GET", "close-for-update", "PUT", "open"]
    assert emulator.state.pools["2"]["status"] == "OPEN"  # the gateway waited for the open operation
    assert emulator.state.overlap_changes["2"]  # the PUT changed overlap settings


async def test_pool_is_reopened_and_error_returned_when_put_fails(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    emulator.state.add_fault(
        Fault(method="PUT", path="^/api/v1/pools/2$", times=None, status=409, code="CONFLICT_STATE")
    )
    status = await refused(gw, "2", skill("7"))
    assert status["code"] == grpc.StatusCode.FAILED_PRECONDITION
    assert status["ErrorInfo"].metadata["toloka_code"] == "CONFLICT_STATE"
    assert pool_calls(emulator, "2") == ["GET", "close-for-update", "PUT", "open"]
    assert emulator.state.pools["2"]["status"] == "OPEN"
    assert configs(emulator, "2")[1]["rules"][0]["conditions"][0]["value"] == "RESTRICTION"  # unchanged


async def test_open_pool_is_refused_without_writes_when_refuse_if_open(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    status = await refused(gw, "2", skill("7"), refuse_if_open=True)
    assert status["code"] == grpc.StatusCode.FAILED_PRECONDITION
    assert status["ErrorInfo"].reason == "POOL_IS_OPEN"
    assert pool_calls(emulator, "2") == ["GET"]


# ---- refusals ----------------------------------------------------------------------------------


async def test_archived_pool_is_refused(gw: InProcessGateway, emulator: EmulatorServer) -> None:
    status = await refused(gw, "3", restriction())
    assert status["code"] == grpc.StatusCode.FAILED_PRECONDITION
    assert status["ErrorInfo"].reason == "POOL_IS_ARCHIVED"
    assert pool_calls(emulator, "3") == ["GET"]


async def test_unknown_pool_is_not_found(gw: InProcessGateway) -> None:
    status = await refused(gw, "999", restriction())
    assert status["code"] == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gw.stub.GetReworkRules(pb.GetReworkRulesRequest(pool_id="999"), metadata=gw.md())
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_assessment_rule_is_refused_naming_its_index_when_pool_auto_accepts(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    status = await refused(gw, "1", restriction(), reject())
    assert status["code"] == grpc.StatusCode.FAILED_PRECONDITION
    assert [(v.field, v.reason) for v in status["BadRequest"].field_violations] == [
        ("rules[1]", "AUTO_ACCEPT_POOL")
    ]
    assert pool_calls(emulator, "1") == ["GET"]


async def test_bad_request_is_refused_with_field_violations_before_any_toloka_call(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    status = await refused(gw, "x1", pb.ReworkRule(delta=0), skill("abc"), operation_id="nope")
    assert status["code"] == grpc.StatusCode.INVALID_ARGUMENT
    fields = {v.field for v in status["BadRequest"].field_violations}
    assert fields == {
        "pool_id",
        "rules[0].trigger",
        "rules[0].delta",
        "rules[1].skill_change.skill_id",
        "operation_id",
    }
    assert emulator.state.requests == []


async def test_pool_with_rule_the_model_cannot_express_is_refused(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    emulator.state.seed_pool(
        id="7",
        auto_accept_solutions=False,
        quality_control={
            "configs": [
                {
                    "collector_config": {"type": "USERS_ASSESSMENT"},
                    "rules": [
                        {
                            "conditions": [
                                {
                                    "key": "pool_access_revoked_reason",
                                    "operator": "NE",
                                    "value": "RESTRICTION",
                                }
                            ],
                            "action": {
                                "type": "CHANGE_OVERLAP",
                                "parameters": {"delta": 1, "open_pool": True},
                            },
                        }
                    ],
                }
            ]
        },
    )
    status = await refused(gw, "7", restriction())
    assert status["code"] == grpc.StatusCode.FAILED_PRECONDITION
    assert status["ErrorInfo"].reason == "UNSUPPORTED_REWORK_RULE"
    assert [v.field for v in status["BadRequest"].field_violations] == [
        "pool.quality_control.configs[0].rules[0]"
    ]
    assert pool_calls(emulator, "7") == ["GET"]


# ---- idempotency -------------------------------------------------------------------------------


async def test_operation_id_replays_the_first_answer_without_toloka_calls(
    gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    op = str(uuid.uuid4())
    first = await set_rules(gw, "4", skill("5"), restriction(), operation_id=op)
    assert first.changed and not first.replayed and first.operation_id == op
    start = len(emulator.state.requests)
    again = await set_rules(gw, "4", restriction(), skill("5"), operation_id=op)  # same set, other order
    assert again.replayed and again.changed and again.operation_id == op
    assert list(again.rules) == list(first.rules)
    assert emulator.state.requests[start:] == []
    status = await refused(gw, "4", skill("6"), operation_id=op)
    assert status["code"] == grpc.StatusCode.ALREADY_EXISTS


# ---- concurrency across replicas ---------------------------------------------------------------


@pytest.mark.slow
async def test_concurrent_writers_on_two_replicas_never_interleave_and_last_writer_wins(
    emulator: EmulatorServer, redis_url: str, tmp_path: Path
) -> None:
    env = {
        "TOLOKA_URL": emulator.url,
        "TOLOKA_API_KEY": "test-key-not-secret",
        "REDIS_URL": redis_url,
        "GATEWAY_CONFIG": write_config(tmp_path),
    }
    procs = [GatewayProcess(env=dict(env)).start(tmp_path) for _ in range(2)]
    try:
        await asyncio.gather(*(p.wait_serving() for p in procs))
        # Slow PUTs widen the window in which an unserialised pair would interleave.
        emulator.state.add_fault(Fault(method="PUT", path="^/api/v1/pools/2$", times=None, latency_s=0.3))
        start = len(emulator.state.requests)
        channels = [grpc.aio.insecure_channel(p.target) for p in procs]
        stubs = [pb_grpc.TolokaGatewayStub(c) for c in channels]  # type: ignore[no-untyped-call]
        try:
            # Read-modify-write on the client side: both read the same rules, each adds its own.
            seen = await stubs[0].GetReworkRules(pb.GetReworkRulesRequest(pool_id="2"), timeout=10)
            requests = [
                pb.SetReworkRulesRequest(pool_id="2", rules=[*seen.rules, skill(s)]) for s in ("11", "22")
            ]
            replies = await asyncio.gather(
                *(stub.SetReworkRules(r, timeout=30) for stub, r in zip(stubs, requests, strict=True))
            )
        finally:
            for c in channels:
                await c.close(None)
        assert all(r.changed for r in replies)
        await settle_pool_operations(emulator)
        pool = emulator.state.pools["2"]
        final = qc.parse_pool_rules(pool).rules
        winners = [r for r in requests if qc.same_rules(final, r.rules)]
        assert len(winners) == 1, final
        assert pool["status"] == "OPEN"
        assert pool["quality_control"]["configs"][0]["collector_config"]["type"] == "GOLDEN_SET"
        calls = pool_calls(emulator, "2", start)
        # Skip the GetReworkRules read; then two whole read-close-put-open sequences, one after the other.
        assert calls == ["GET"] + ["GET", "close-for-update", "PUT", "open"] * 2, calls
    finally:
        for p in procs:
            p.stop()


# ---- the pool lock on a real Redis -------------------------------------------------------------


def lock_settings(**kw: Any) -> ReworkSettings:
    return ReworkSettings(
        **{"lock_lease_s": 0.3, "lock_wait_s": 5.0, "key_prefix": f"t{uuid.uuid4().hex[:6]}", **kw}
    )


async def test_pool_lock_lease_is_renewed_while_held_and_freed_on_release(redis_url: str) -> None:
    settings = lock_settings(lock_lease_s=0.3)
    clients = [SharedRedis(connect_redis(redis_url)), SharedRedis(connect_redis(redis_url))]
    holder, waiter = (build_pool_lock(settings, c) for c in clients)
    try:
        async with holder.hold("9", call=Call()):
            # Three leases long: only renewal keeps the other replica out.
            with pytest.raises(errors.DeadlineExceeded):
                async with waiter.hold("9", call=Call(deadline=time.monotonic() + 0.9)):
                    pass
        t0 = time.monotonic()
        async with waiter.hold("9", call=Call(deadline=time.monotonic() + 1.0)):
            assert time.monotonic() - t0 < 0.2
    finally:
        for c in clients:
            await c.close()
    assert holder.lost_leases == 0


async def test_pool_lock_falls_back_to_the_local_lock_when_redis_unreachable() -> None:
    shared = SharedRedis(connect_redis(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2))
    lock = build_pool_lock(lock_settings(), shared)
    order: list[str] = []

    async def hold(name: str) -> None:
        async with lock.hold("9", call=Call(deadline=time.monotonic() + 5)):
            order.append(name)
            await asyncio.sleep(0.02)
            order.append(name)

    try:
        await asyncio.gather(hold("a"), hold("b"))
    finally:
        await shared.close()
    assert lock.degraded
    assert order in (["a", "a", "b", "b"], ["b", "b", "a", "a"])


async def test_pool_writer_stops_waiting_for_an_operation_at_the_call_deadline(
    emulator: EmulatorServer,
) -> None:
    emulator.state.pool_operation_duration_s = 60.0  # the pool's operation stays RUNNING
    settings = TolokaSettings(url=emulator.url, api_key="emulator-key")
    toloka = TolokaClient(
        settings=settings,
        base_url=emulator.url,
        limiter=build_rate_limiter(RateLimitSettings(limits=default_limits()), None),
    )
    await toloka.start()
    slept: list[tuple[float, float]] = []

    class RecordingClock(SystemClock):  # real time: the bound under test is the call's own
        async def sleep(self, seconds: float) -> None:
            slept.append((seconds, deadline - time.monotonic()))
            await super().sleep(seconds)

    try:
        assert emulator.state.pools["2"]["status"] == "OPEN"
        op = await toloka.pool_action("2", "close", Call())
        assert op is not None and op["status"] in ("PENDING", "RUNNING")
        reads_before = len(emulator.state.requests)
        writer = PoolWriter(
            toloka=toloka, settings=ReworkSettings(operation_wait_s=60), clock=RecordingClock()
        )
        started = time.monotonic()
        deadline = started + 0.5
        with pytest.raises(errors.DeadlineExceeded):
            await writer._wait(op, Call(deadline=deadline))
        assert time.monotonic() - started < 0.6  # real time: the bound under test is the call's own
        reads = [
            r for r in emulator.state.requests[reads_before:] if r.path == f"/api/v1/operations/{op['id']}"
        ]
        assert len(reads) >= 2 and all(s < left for s, left in slept), slept
    finally:
        await toloka.close()
