"""`toloka-gateway client quota`: the caller's limits as a table or JSON, narrowed by --kind."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.protobuf import duration_pb2

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.cli.quota_command import table
from gateway.emulator.server import EmulatorServer
from tests.cli.conftest import run_cli
from tests.support.gateway_harness import InProcessGateway, start_gateway, write_config

LIMITS = """
[rate_limits]
limits = [
  {name = "account", capacity = 300, period = "1s"},
  {name = "tasks_per_minute", kinds = ["create_tasks"], capacity = 100000, period = "1m", unit = "tasks"},
]
[[rate_limits.callers.cli]]
name = "trial_reads"
kinds = ["get_pool"]
capacity = 7
period = "1h"
shadow = true
"""


@pytest.fixture
async def gw_limits(emulator: EmulatorServer, tmp_path: Path) -> AsyncIterator[InProcessGateway]:
    handle = await start_gateway(toloka_url=emulator.url, config_path=write_config(tmp_path, LIMITS))
    yield handle
    await handle.close()


def target_of(gw: InProcessGateway) -> str:
    return f"127.0.0.1:{gw.gateway.port}"


async def test_quota_prints_every_limit_of_the_caller_as_a_table(gw_limits: InProcessGateway) -> None:
    result = await run_cli("quota", "--caller", "cli", target=target_of(gw_limits))
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "LIMIT                            KINDS         UNIT      CAPACITY  PER  REMAINING  NEXT UNIT IN",
        "account                          *             requests       300  1s         300  -",
        "tasks_per_minute                 create_tasks  tasks      100,000  1m     100,000  -",
        "caller:cli/trial_reads (shadow)  get_pool      requests         7  1h           7  -",
        "(shadow): decided and counted, never refuses",
    ]


async def test_quota_narrows_to_a_kind_and_prints_json_for_scripts(gw_limits: InProcessGateway) -> None:
    result = await run_cli(
        "quota", "--kind", "create_tasks", "--json", "--caller", "cli", target=target_of(gw_limits)
    )
    assert result.code == 0, result.err
    reply = json.loads(result.out)
    assert [(q["name"], q["remaining"], q["unit"]) for q in reply["limits"]] == [
        ("account", 300, "LIMIT_UNIT_REQUESTS"),
        ("tasks_per_minute", 100000, "LIMIT_UNIT_TASKS"),
    ]


async def test_quota_exits_1_naming_the_field_when_the_kind_is_unknown(gw_limits: InProcessGateway) -> None:
    result = await run_cli("quota", "--kind", "create_task", target=target_of(gw_limits))
    assert result.code == 1
    assert "INVALID_ARGUMENT" in result.err and "kind" in result.err


def test_the_table_says_when_toloka_holds_requests_back_and_when_the_gateway_is_degraded() -> None:
    reply = pb.GetQuotaResponse(
        degraded=True, toloka_cooldown=duration_pb2.Duration(seconds=12, nanos=500_000_000)
    )
    assert table(reply) == [
        "LIMIT  KINDS  UNIT  CAPACITY  PER  REMAINING  NEXT UNIT IN",
        "(no limit applies)",
        "Toloka answered 429: requests are held back for 12.5s more",
        "degraded: Redis is unreachable; REMAINING is this replica's local share",
    ]


TWO_ACCOUNTS = """
[accounts.production]
url = "emulator"
[accounts.production.rate_limits]
limits = [{name = "prod_reads", kinds = ["get_pool"], capacity = 5, period = "1h"}]
[accounts.sandbox]
url = "emulator"
[accounts.sandbox.rate_limits]
limits = [{name = "sandbox_reads", kinds = ["get_pool"], capacity = 9, period = "1h"}]
[auth.callers.cli]
accounts = ["production", "sandbox"]
"""


async def test_quota_shows_the_account_the_account_flag_or_variable_names(tmp_path: Path) -> None:
    gw = await start_gateway(toloka_url="", config_path=write_config(tmp_path, TWO_ACCOUNTS))
    try:
        default = await run_cli("quota", "--json", "--caller", "cli", target=target_of(gw))
        flagged = await run_cli(
            "--account", "sandbox", "quota", "--json", "--caller", "cli", target=target_of(gw)
        )
        env = {"GATEWAY_ACCOUNT": "sandbox"}
        from_env = await run_cli("quota", "--json", "--caller", "cli", target=target_of(gw), env=env)
        refused = await run_cli("quota", "--account", "nope", "--caller", "cli", target=target_of(gw))
    finally:
        await gw.close()
    replies = [json.loads(r.out) for r in (default, flagged, from_env)]
    assert [[q["name"] for q in reply["limits"]] for reply in replies] == [
        ["prod_reads"],
        ["sandbox_reads"],
        ["sandbox_reads"],
    ]
    assert [reply["account"] for reply in replies] == ["production", "sandbox", "sandbox"]
    # The table names a named account (a single-account gateway's "default" is left out: see above).
    assert table(pb.GetQuotaResponse(account="sandbox"))[-1] == "account: sandbox"
    assert refused.code == 1 and "PERMISSION_DENIED" in refused.err and "nope" in refused.err
