"""The gateway's first log lines, as a person reads them: where it listens, the emulator and its pools."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import aiohttp

from gateway.startup_summary import SeededPool, StartupFacts, local_target, redis_place, startup_lines
from tests.support.gateway_harness import GatewayProcess, write_config


def facts(**kw: object) -> StartupFacts:
    base: dict[str, object] = {
        "listen": "[::]:50051",
        "port": 50051,
        "toloka_url": "http://127.0.0.1:40001",
        "emulator_pools": [SeededPool("1", "CLOSED", 0, 3, False), SeededPool("2", "OPEN", 3, None, True)],
        "redis_url": "",
    }
    return StartupFacts(**{**base, **kw})  # type: ignore[arg-type]


def test_lines_name_the_address_to_dial_the_emulator_and_its_pools_when_on_defaults() -> None:
    assert startup_lines(facts()) == [
        "toloka-gateway serving gRPC on [::]:50051 (clients here dial 127.0.0.1:50051, "
        "e.g. toloka-gateway client --target 127.0.0.1:50051 ...)",
        "Toloka: the built-in emulator at http://127.0.0.1:40001 (no TOLOKA_API_KEY set; control endpoints "
        "under http://127.0.0.1:40001/_emulator/); seeded pools: 1 CLOSED (default overlap 3); "
        "2 OPEN (3 tasks, no default overlap, rework rules)",
        "state: in-process (no REDIS_URL set; one replica only)",
    ]


def test_lines_name_real_toloka_and_redis_without_its_password_when_configured() -> None:
    lines = startup_lines(
        facts(
            toloka_url="https://sandbox.toloka.dev",
            emulator_pools=None,
            redis_url="redis://user:hunter2@redis.internal:6380/2",
            metrics_port=9090,
        )
    )
    assert lines[1] == "Toloka: https://sandbox.toloka.dev (TOLOKA_API_KEY set)"
    assert lines[2] == "state: Redis at redis://redis.internal:6380/2 (REDIS_URL; shared by every replica)"
    assert lines[3] == "metrics: Prometheus on port 9090 (/metrics)"
    assert "hunter2" not in "\n".join(lines)


def test_local_target_keeps_a_specific_host_and_maps_wildcards_to_loopback() -> None:
    assert local_target("0.0.0.0:0", 4321) == "127.0.0.1:4321"
    assert local_target("10.1.2.3:50051", 50051) == "10.1.2.3:50051"
    assert redis_place("rediss://:pw@h:1") == "rediss://h:1"


async def test_process_logs_a_working_emulator_address_and_the_pools_it_really_holds(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("TOLOKA_API_KEY", "TOLOKA_URL", "REDIS_URL")}
    proc = GatewayProcess(env={**env, "GATEWAY_CONFIG": write_config(tmp_path)})
    proc.start(tmp_path)
    try:
        await proc.wait_serving()
        messages = [json.loads(line)["msg"] for line in proc.logs().splitlines() if line.startswith("{")]
        toloka = next(m for m in messages if m.startswith("Toloka: "))
        url = re.search(r"emulator at (http://127\.0\.0\.1:\d+) ", toloka)
        assert url is not None, toloka
        # The address is the emulator's own, and the pools named are the ones it serves.
        async with aiohttp.ClientSession(headers={"Authorization": "ApiKey any"}) as http:
            async with http.get(f"{url.group(1)}/api/v1/pools/2") as reply:
                pool = await reply.json()
            async with http.get(f"{url.group(1)}/api/v1/tasks", params={"pool_id": "2"}) as reply:
                tasks = (await reply.json())["items"]
    finally:
        proc.stop()
    assert messages[0].startswith(f"toloka-gateway serving gRPC on {proc.target}")
    assert f"2 {pool['status']} ({len(tasks)} tasks" in toloka
    assert messages[2] == "state: in-process (no REDIS_URL set; one replica only)"


def test_lines_name_the_default_account_and_where_its_key_comes_from_when_accounts_are_configured() -> None:
    real = startup_lines(facts(toloka_url="https://toloka.dev", emulator_pools=None, account="production"))
    assert (
        real[1]
        == "Toloka: account production (the default): https://toloka.dev (its key from [accounts.production])"
    )
    emulated = startup_lines(facts(emulator_pools=[], account="sandbox"))
    assert emulated[1] == (
        "Toloka: account sandbox (the default): the built-in emulator at http://127.0.0.1:40001 "
        "(control endpoints under http://127.0.0.1:40001/_emulator/); seeded pools: none"
    )
    assert "TOLOKA_API_KEY" not in "\n".join(real + emulated)  # [accounts] does not read it
