"""ShouldRateLimit for several Toloka accounts: the `account` entry picks the limiter that decides.

Real parts only: a real redis-server, one limiter per account built as the gateway builds them
(`build_rate_limiter`, each account's key prefix scoped as `Account.scoped` does), a real grpc.aio
server and the Envoy stubs over a real channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
import redis.asyncio as aioredis
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from gateway.emulator.server import EmulatorServer
from gateway.limit_spec import LimitSpec
from gateway.observability.metrics import GatewayMetrics
from gateway.ratelimit import AdmissionLimiter, build_rate_limiter
from gateway.rls import RateLimitServicer, add_to_server
from gateway.settings import RateLimitSettings, RlsSettings, TolokaSettings
from gateway.settings.accounts import Account
from gateway.shared_state import SharedRedis, connect_redis
from tests.rls.conftest import request
from tests.rls.envoy_egress import ACCOUNT_HEADER, EgressEnvoy
from tests.support.redis_servers import RedisServer

Response = rls_pb2.RateLimitResponse
OK, OVER = Response.OK, Response.OVER_LIMIT

# Two accounts with different budgets; "sandbox", the default, is declared second on purpose.
PRODUCTION = RateLimitSettings(
    limits=(
        LimitSpec("production_account", ("*",), 5, 60.0),
        LimitSpec("production_tasks", ("create_tasks",), 10, 60.0, "tasks"),
    ),
    degraded_share=0.4,
)
SANDBOX = RateLimitSettings(limits=(LimitSpec("sandbox_account", ("*",), 2, 60.0),), degraded_share=0.5)
# A budget no Redis on this machine misses: the answers under test are Redis's, not the local share's.
RLS = RlsSettings(redis_budget_s=1.0)


def scoped(name: str, limits: RateLimitSettings) -> RateLimitSettings:
    """`limits` in the account `name`'s own key space, as `[accounts.<name>]` configures it."""
    return replace(limits, key_prefix=Account(name, TolokaSettings(), limits).scoped(limits.key_prefix))


@dataclass
class Served:
    stub: Any
    port: int
    limiters: dict[str, AdmissionLimiter]
    metrics: GatewayMetrics

    async def ask(self, *descriptors: dict[str, Any], domain: str = "toloka") -> Any:
        return await self.stub.ShouldRateLimit(request(*descriptors, domain=domain))

    def sample(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(f"toloka_gateway_{name}", labels)
        return 0.0 if value is None else float(value)


@contextlib.asynccontextmanager
async def serving(servicer: RateLimitServicer) -> AsyncIterator[tuple[Any, int]]:
    """`servicer` on a real grpc.aio server: a RateLimitService stub on a real channel to it, the port."""
    server = grpc.aio.server()
    add_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield rls_pb2_grpc.RateLimitServiceStub(channel), port
    finally:
        await server.stop(None)


@contextlib.asynccontextmanager
async def accounts_on(
    redis_url: str, accounts: Mapping[str, RateLimitSettings], default: str, rls: RlsSettings = RLS
) -> AsyncIterator[Served]:
    """One limiter per account on one shared Redis client, served by one RateLimitServicer."""
    shared = SharedRedis(connect_redis(redis_url))
    limiters = {name: build_rate_limiter(scoped(name, limits), shared) for name, limits in accounts.items()}
    metrics = GatewayMetrics()
    servicer = RateLimitServicer(limiters=limiters, default_account=default, settings=rls, metrics=metrics)
    try:
        async with serving(servicer) as (stub, port):
            yield Served(stub, port, limiters, metrics)
    finally:
        for limiter in limiters.values():
            await limiter.close()
        await shared.close()


@pytest.fixture
async def served(redis_url: str) -> AsyncIterator[Served]:
    async with accounts_on(redis_url, {"production": PRODUCTION, "sandbox": SANDBOX}, "sandbox") as found:
        yield found


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


def codes(reply: Any) -> list[int]:
    return [s.code for s in reply.statuses]


def limit_names(reply: Any) -> list[str]:
    return [s.current_limit.name for s in reply.statuses]


async def test_each_account_spends_its_own_budget(served: Served) -> None:
    sandbox = [await served.ask({"kind": "get_pool", "account": "sandbox"}) for _ in range(3)]
    assert [r.overall_code for r in sandbox] == [OK, OK, OVER]
    assert {name for r in sandbox for name in limit_names(r)} == {"sandbox_account"}
    assert [r.statuses[0].limit_remaining for r in sandbox] == [1, 0, 0]
    production = await served.ask({"kind": "get_pool", "account": "production"})
    assert production.overall_code == OK  # the sandbox's exhausted budget is not production's
    status = production.statuses[0]
    assert (status.current_limit.name, status.current_limit.requests_per_unit) == ("production_account", 5)
    assert status.limit_remaining == 4


async def test_a_descriptor_without_account_is_decided_by_the_default_account(
    served: Served, redis_client: aioredis.Redis
) -> None:
    # Without the entry, and with an empty one: the default account, "sandbox" (capacity 2).
    replies = [await served.ask({"kind": "get_pool"}), await served.ask({"kind": "get_pool", "account": ""})]
    assert [r.overall_code for r in replies] == [OK, OK]
    assert limit_names(replies[0]) == limit_names(replies[1]) == ["sandbox_account"]
    assert (await served.ask({"kind": "get_pool", "account": "sandbox"})).overall_code == OVER
    assert await redis_client.hget("{tgw:acct:sandbox}:rl:g:sandbox_account:60000", "s") == "2"
    assert not await redis_client.exists("{tgw:acct:production}:rl:g:production_account:60000")
    assert (await served.ask({"kind": "get_pool", "account": "production"})).statuses[0].limit_remaining == 4


async def test_of_repeated_account_entries_the_first_counts(served: Served) -> None:
    # One RateLimitDescriptor with `account` twice (request() takes a dict: build it by hand).
    twice = request({"kind": "get_pool", "account": "production"})
    twice.descriptors[0].entries.add(key="account", value="sandbox")
    reply = await served.stub.ShouldRateLimit(twice)
    assert limit_names(reply) == ["production_account"]


async def test_a_request_naming_both_accounts_is_answered_per_descriptor_in_order(
    served: Served, redis_proc: RedisServer
) -> None:
    for _ in range(2):  # the sandbox (the default account) is spent
        await served.ask({"kind": "get_pool"})
    before = _evalsha(redis_proc)
    reply = await served.ask(
        {"kind": "get_pool", "account": "production"},
        {"kind": "get_pool", "account": "sandbox"},
        {"kind": "create_tasks", "account": "production", "hits": 8},
        {"kind": "get_pool"},
    )
    assert _evalsha(redis_proc) - before == 2  # one decision, one round trip, per account
    assert reply.overall_code == OVER
    assert codes(reply) == [OK, OVER, OK, OVER]
    assert limit_names(reply) == [
        "production_account",
        "sandbox_account",
        "production_tasks",
        "sandbox_account",
    ]
    # Production's two descriptors were one decision: its account limit charged once (4 of 5 left),
    # its task limit by 8 (2 of 10 left), each descriptor reporting its own tightest limit.
    assert [reply.statuses[i].limit_remaining for i in (0, 2)] == [4, 2]
    # Each decision was recorded on the limiter that made it.
    assert served.limiters["production"].stats.remaining["global/production_account"] == 4
    assert served.limiters["production"].stats.remaining["global/production_tasks"] == 2
    assert served.limiters["sandbox"].stats.remaining["global/sandbox_account"] == 0


async def test_kind_labels_follow_each_accounts_own_limits(served: Served) -> None:
    await served.ask({"kind": "create_tasks", "account": "production"}, {"kind": "create_tasks"})
    assert served.sample("rls_decisions_total", domain="toloka", kind="create_tasks", code="OK") == 1
    assert served.sample("rls_decisions_total", domain="toloka", kind="other", code="OK") == 1


async def test_an_account_the_gateway_does_not_serve_is_over_limit_and_nothing_is_spent(
    served: Served, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.rls")
    typo = ({"kind": "get_pool", "account": "production"}, {"kind": "get_pool", "account": "prodution"})
    for _ in range(2):
        reply = await served.ask(*typo)
        assert (reply.overall_code, codes(reply)) == (OVER, [OK, OVER])
        assert reply.statuses[0].current_limit.name == "production_account"
        assert not reply.statuses[1].HasField("current_limit")
    assert await redis_client.dbsize() == 0  # no account was charged for the refused requests
    assert (
        served.sample("rls_decisions_total", domain="toloka", kind="unknown_account", code="OVER_LIMIT") == 2
    )
    warnings = [r.getMessage() for r in caplog.records if "prodution" in r.getMessage()]
    assert len(warnings) == 1  # once per name, not per request
    # Nothing was debited: production still has its whole budget.
    assert (await served.ask({"kind": "get_pool", "account": "production"})).statuses[0].limit_remaining == 4
    # Another domain's request is still none of ours, whatever account it names.
    other = await served.ask({"kind": "get_pool", "account": "prodution"}, domain="web")
    assert (other.overall_code, codes(other)) == (OK, [OK])


async def test_each_accounts_redis_keys_live_under_its_own_prefix(
    served: Served, redis_client: aioredis.Redis
) -> None:
    await served.ask(
        {"kind": "create_tasks", "account": "production", "hits": 3},
        {"kind": "get_pool", "account": "sandbox"},
    )
    keys = {key async for key in redis_client.scan_iter("*")}
    assert keys == {
        "{tgw:acct:production}:rl:g:production_account:60000",
        "{tgw:acct:production}:rl:g:production_tasks:60000",
        "{tgw:acct:sandbox}:rl:g:sandbox_account:60000",
    }
    assert await redis_client.hget("{tgw:acct:production}:rl:g:production_tasks:60000", "s") == "3"
    assert await redis_client.hget("{tgw:acct:sandbox}:rl:g:sandbox_account:60000", "s") == "1"


def test_a_default_account_without_a_limiter_is_refused_when_the_servicer_is_built() -> None:
    limiter = build_rate_limiter(PRODUCTION, None)
    with pytest.raises(ValueError, match="'main'"):
        RateLimitServicer(limiters={"default": limiter}, default_account="main", settings=RLS)


class GatedRedis:
    """A relay to the real redis-server that, once armed, holds every reply until commands are
    outstanding on `width` connections at once: a decision waiting for the one before it to
    finish never gets its reply (and the limiter's budget then answers from the local share)."""

    def __init__(self, port: int, width: int) -> None:
        self._port = port
        self._width = width
        self._armed = False
        self._sending: set[int] = set()
        self._open = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"

    def arm(self) -> None:
        self._armed, self._open = True, asyncio.Event()
        self._sending.clear()

    def release(self) -> None:
        self._open.set()

    async def close(self) -> None:
        self.release()
        if self._server is not None:
            self._server.close()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self._port)
        await asyncio.gather(
            self._pipe(client_reader, writer, id(client_writer), replies=False),
            self._pipe(reader, client_writer, id(client_writer), replies=True),
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: int, *, replies: bool
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                if self._armed and not replies:
                    self._sending.add(connection)
                    if len(self._sending) >= self._width:
                        self._open.set()
                if self._armed and replies:
                    await self._open.wait()
                writer.write(chunk)
                await writer.drain()
        writer.close()


async def test_the_decisions_of_two_accounts_are_made_concurrently(
    redis_url: str, redis_proc: RedisServer
) -> None:
    gate = GatedRedis(redis_proc.port, width=2)
    url = await gate.start()
    try:
        async with accounts_on(url, {"production": PRODUCTION, "sandbox": SANDBOX}, "sandbox") as served:
            both = ({"kind": "get_pool", "account": "production"}, {"kind": "get_pool", "account": "sandbox"})
            await served.ask(*both)  # scripts loaded, connections open
            gate.arm()
            reply = await served.ask(*both)
            gate.release()
            assert codes(reply) == [OK, OK]
            # Both answers are Redis's: neither decision waited for the other's reply.
            assert [lim.stats.degraded_decisions for lim in served.limiters.values()] == [0, 0]
            assert [s.limit_remaining for s in reply.statuses] == [3, 0]
    finally:
        await gate.close()


async def test_envoy_maps_the_account_header_to_the_account_entry(
    redis_url: str, emulator: EmulatorServer, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    """The operating guide's action (`request_headers` x-toloka-account -> `account`) through a real
    Envoy: the header picks the budget, its absence the default account, a typo a 429."""
    accounts = {"production": PRODUCTION, "sandbox": SANDBOX}
    async with accounts_on(redis_url, accounts, "production") as served:
        # A generous filter timeout: the first call also opens Envoy's connection to the service.
        envoy = EgressEnvoy(toloka_port=emulator.port, rls_port=served.port, timeout_s=1.0)
        try:
            envoy.start(tmp_path / "envoy")
            await envoy.wait_ready()
            async with aiohttp.ClientSession() as http:

                async def limited(account: str | None) -> bool:
                    headers = {} if account is None else {ACCOUNT_HEADER: account}
                    async with http.get(f"{envoy.url}/api/v1/pools/1", headers=headers) as reply:
                        await reply.read()
                        assert reply.status != 500, envoy.logs()  # the service always answered
                        return reply.headers.get("x-envoy-ratelimited") == "true"

                sandbox = [await limited("sandbox") for _ in range(3)]
                unnamed = [await limited(None) for _ in range(2)]
                typo = await limited("prodution")
        finally:
            envoy.stop()
        assert (sandbox, unnamed, typo) == ([False, False, True], [False, False], True)
        assert (
            served.sample("rls_decisions_total", domain="toloka", kind="unknown_account", code="OVER_LIMIT")
            == 1
        )
    assert await redis_client.hget("{tgw:acct:sandbox}:rl:g:sandbox_account:60000", "s") == "2"
    assert await redis_client.hget("{tgw:acct:production}:rl:g:production_account:60000", "s") == "2"


def _evalsha(server: RedisServer) -> int:
    for line in server.cli("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_evalsha:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0
