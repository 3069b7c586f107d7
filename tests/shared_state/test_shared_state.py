"""The shared-state primitives on real redis-server processes: health, leases, the subscriber, Lua headers."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
from collections.abc import AsyncIterator
from importlib.resources import files

import pytest

import gateway
from gateway.shared_state import (
    Leases,
    RedisHealth,
    RedisUnavailable,
    SharedRedis,
    Subscription,
    connect_redis,
)
from gateway.shared_state.scripts import check_header
from tests.support.clock import ManualClock
from tests.support.redis_servers import RedisServer, redis_server


@pytest.fixture
async def shared(redis_url: str) -> AsyncIterator[SharedRedis]:
    s = SharedRedis(connect_redis(redis_url))
    yield s
    await s.close()


def _lua_texts() -> dict[str, str]:
    """Every Lua script the gateway runs: module constants that call Redis, and the .lua files."""
    texts: dict[str, str] = {}
    for info in pkgutil.walk_packages(gateway.__path__, "gateway."):
        if info.name.startswith(("gateway.api", "gateway.emulator", "gateway.examples")):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, str) and "redis.call(" in value:
                texts[f"{info.name}.{name}"] = value
    for path in files("gateway.ratelimit").iterdir():
        if path.name.endswith(".lua"):
            texts[path.name] = path.read_text()
    return texts


def test_every_lua_script_opens_with_its_keys_argv_and_returns_header() -> None:
    texts = _lua_texts()
    assert len(texts) >= 10, sorted(texts)  # dedupe (5), poller (3), lease (2), limiter files (2)
    for name, text in texts.items():
        try:
            check_header(text)
        except ValueError as e:
            pytest.fail(f"{name}: {e}")


def test_a_script_without_its_header_is_refused() -> None:
    with pytest.raises(ValueError, match="ARGV"):
        check_header("-- does something\n-- KEYS[1] a key\n-- returns 1\nreturn redis.call('GET', KEYS[1])")
    with pytest.raises(ValueError, match=r"KEYS.*ARGV.*returns"):
        check_header("return redis.call('GET', KEYS[1])")


async def test_health_tells_subscribers_and_runs_the_recovery_hook_before_clearing() -> None:
    server = RedisServer().start()
    client = connect_redis(server.url, socket_connect_timeout=0.2)
    health = RedisHealth(client, clock=ManualClock().never_waking())  # the test runs each probe
    heard: list[bool] = []
    hook_runs: list[bool] = []
    fail_hook = True

    async def hook() -> None:
        hook_runs.append(health.down)
        if fail_hook:
            raise RedisUnavailable("write-back failed (test)")

    health.subscribe(heard.append)
    health.on_recovered(hook)
    try:
        server.stop()
        with pytest.raises(RedisUnavailable):
            async with health.guard():
                await client.ping()
        assert health.down and heard == [True] and health.trips == 1
        with pytest.raises(RedisUnavailable):  # while down, nothing is asked
            async with health.guard():
                raise AssertionError("not reached")
        assert not await health.probe_once()  # Redis still gone: the hook is not run
        assert hook_runs == []
        server.start()
        assert not await health.probe_once()  # Redis answers, the hook fails: still down
        assert hook_runs == [True] and health.down and heard == [True]
        fail_hook = False
        assert await health.probe_once()
        assert hook_runs == [True, True] and not health.down and heard == [True, False]
        async with health.guard():
            assert await client.ping()
    finally:
        await health.close()
        await client.aclose()
        server.stop()


async def test_a_lease_has_one_holder_is_renewed_released_and_expires_by_itself(shared: SharedRedis) -> None:
    leases = Leases(shared, lease_s=0.2)
    assert await leases.acquire("t:lease", "a")
    assert not await leases.acquire("t:lease", "b")
    assert await leases.renew("t:lease", "a")
    assert not await leases.renew("t:lease", "b")
    assert not await leases.release("t:lease", "b")
    assert await leases.release("t:lease", "a")
    assert await leases.acquire("t:lease", "b")
    ttl_ms = await shared.redis.pttl("t:lease")
    assert 0 < ttl_ms <= 200
    await asyncio.sleep(ttl_ms / 1000 + 0.05)  # Redis's own clock expires it
    assert not await leases.renew("t:lease", "b")
    assert await leases.acquire("t:lease", "a")


async def test_subscription_hands_on_messages_once_live_and_returns_after_an_outage() -> None:
    with redis_server() as server:
        shared = SharedRedis(connect_redis(server.url, socket_connect_timeout=0.2))
        messages: asyncio.Queue[bytes] = asyncio.Queue()
        live: asyncio.Queue[bool] = asyncio.Queue()
        sub = Subscription(shared, "t:chan", on_message=messages.put_nowait, on_live=live.put_nowait)
        sub.start()
        try:
            assert await asyncio.wait_for(live.get(), 5) is True
            await shared.redis.publish("t:chan", b"one")
            assert await asyncio.wait_for(messages.get(), 5) == b"one"
            server.stop()
            with pytest.raises(RedisUnavailable):
                async with shared.health.guard():
                    await shared.redis.ping()
            assert await asyncio.wait_for(live.get(), 5) is False and not sub.live
            server.start()
            # The health's probe clears it, then the subscription is taken again.
            assert await asyncio.wait_for(live.get(), 10) is True and sub.live
            await shared.redis.publish("t:chan", b"two")
            assert await asyncio.wait_for(messages.get(), 5) == b"two"
        finally:
            await sub.close()
            await shared.close()


async def test_calls_cut_short_by_their_own_deadlines_still_add_up_to_a_hung_server() -> None:
    with redis_server() as server:
        shared = SharedRedis(connect_redis(server.url))
        try:
            async with shared.health.guard():
                await shared.redis.ping()  # connected: later cut-offs are reads that got no answer
            assert server.cli("CLIENT", "PAUSE", "10000", "ALL") == "OK"  # from now on it answers no one
            # Each caller has 0.1 s: alone, none lasts the 0.5 s of silence. Silence counts only the
            # time the event loop was free to hear an answer, so a busy machine needs more calls.
            for _ in range(30):
                with pytest.raises(RedisUnavailable):
                    async with shared.health.guard(within_s=0.1):
                        await shared.redis.ping()
                if shared.health.down:
                    break
                await asyncio.sleep(0.15)  # sparse traffic: the silence watch stops between calls
            assert shared.health.down and shared.health.trips == 1
        finally:
            await shared.close()
