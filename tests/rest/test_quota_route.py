"""`GET /gateway/v1/quota` on the REST front: the caller its token names, the same limits GetQuota
answers over gRPC, in JSON; bad input gets Toloka-shaped errors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.emulator.server import EmulatorServer
from tests.rest.conftest import TOKENS, Front, start_front

LIMITS = """
[rate_limits]
max_wait = "0s"
limits = [
  {name = "account", capacity = 100, period = "1m"},
  {name = "pool_reads", kinds = ["get_pool"], capacity = 3, period = "1h"},
]
[[rate_limits.callers.reader]]
name = "reader_trial"
capacity = 1
period = "1h"
shadow = true
"""
QUOTA = "/gateway/v1/quota"


@pytest.fixture
async def limited(emulator: EmulatorServer, tmp_path: Path) -> AsyncIterator[Front]:
    gw = await start_front(tmp_path, emulator, LIMITS)
    yield Front(gw, emulator)
    await gw.close()


async def get(front: Front, path: str, caller: str = "reader", method: str = "GET") -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, f"{front.url}{path}", headers=front.auth(caller)) as r,
    ):
        return r.status, await r.json()


async def test_quota_answers_the_callers_limits_after_its_requests_spent_them(limited: Front) -> None:
    for _ in range(2):
        assert (await get(limited, "/api/v1/pools/1"))[0] == 200
    status, body = await get(limited, QUOTA)
    assert status == 200
    assert body == {
        "account": "default",
        "limits": [
            {"name": "account", "caller": "", "kinds": ["*"], "unit": "requests", "capacity": 100,
             "period_s": 60.0, "remaining": 98, "next_unit_in_s": 0.0, "shadow": False},
            {"name": "pool_reads", "caller": "", "kinds": ["get_pool"], "unit": "requests", "capacity": 3,
             "period_s": 3600.0, "remaining": 1, "next_unit_in_s": 0.0, "shadow": False},
            {"name": "reader_trial", "caller": "reader", "kinds": ["*"], "unit": "requests", "capacity": 1,
             "period_s": 3600.0, "remaining": 0, "next_unit_in_s": body["limits"][2]["next_unit_in_s"],
             "shadow": True},
        ],
        "degraded": False,
        "toloka_cooldown_s": 0.0,
    }  # fmt: skip
    assert 3599 < body["limits"][2]["next_unit_in_s"] <= 3636
    # A caller over gRPC (token mode: the same token) reads the same numbers.
    writer = await get(limited, QUOTA, caller="writer")
    md = (("authorization", f"Bearer {TOKENS['writer']}"),)
    reply = await limited.gateway.stub.GetQuota(pb.GetQuotaRequest(), metadata=md)
    assert [(q.name, q.remaining) for q in reply.limits] == [("account", 98), ("pool_reads", 1)]
    assert [(q["name"], q["remaining"]) for q in writer[1]["limits"]] == [("account", 98), ("pool_reads", 1)]
    narrowed = await get(limited, f"{QUOTA}?kind=create_tasks", caller="writer")
    assert [q["name"] for q in narrowed[1]["limits"]] == ["account"]


async def test_quota_is_not_forwarded_and_spends_nothing(limited: Front) -> None:
    before = len(await limited.emulator_requests("/"))
    first = await get(limited, QUOTA)
    for _ in range(5):
        assert await get(limited, QUOTA) == first
    assert len(await limited.emulator_requests("/")) == before


async def test_quota_refuses_bad_input_in_tolokas_shape(limited: Front) -> None:
    status, body = await get(limited, f"{QUOTA}?kind=pools")
    assert status == 400 and body["code"] == "VALIDATION_ERROR"
    assert body["payload"]["kind"]["code"] == "UNKNOWN_KIND"
    status, body = await get(limited, f"{QUOTA}?kind=get_pool&kind=read")
    assert status == 400 and body["code"] == "VALIDATION_ERROR"
    status, body = await get(limited, f"{QUOTA}?caller=writer")
    assert status == 400 and "caller" in body["message"]
    status, body = await get(limited, QUOTA, caller="writer", method="POST")
    assert status == 405 and body["code"] == "METHOD_NOT_ALLOWED"
    async with aiohttp.ClientSession() as s, s.get(f"{limited.url}{QUOTA}") as r:
        assert r.status == 401
    status, body = await get(limited, "/gateway/v1/quota/x")
    assert status == 404


async def test_a_shadow_limit_never_refuses_a_rest_request_and_its_metric_and_log_say_it_would_have(
    limited: Front, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.calls")
    statuses = [(await get(limited, "/api/v1/pools/1"))[0] for _ in range(3)]
    assert statuses == [200, 200, 200]  # reader_trial (1 an hour) is shadow
    registry = limited.gateway.gateway.metrics.registry
    labels = {"limit": "caller/reader_trial", "kind": "get_pool", "account": "default"}
    assert registry.get_sample_value("toloka_gateway_ratelimit_shadow_refusals_total", labels) == 2
    lines = [r for r in caplog.records if getattr(r, "method", "") == "GET /api/v1/pools/{id}"]
    assert [getattr(r, "shadow_refusals", None) for r in lines] == [None, ["reader_trial"], ["reader_trial"]]
