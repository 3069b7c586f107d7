"""A PUT /pools/{id} counts against Toloka's overlap-change limit only when it changes the overlap."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.emulator.server import EmulatorServer
from tests.rest.conftest import Front, start_front

ONE_OVERLAP_CHANGE_AN_HOUR = """
[rate_limits]
max_wait = "200ms"
limits = [
  { name = "account_per_second", kinds = ["*"], capacity = 300, period = "1s" },
  { name = "overlap_changes_per_hour", kinds = ["update_pool_overlap"], capacity = 1, period = "1h" },
]
"""


@pytest.fixture
async def limited(emulator: EmulatorServer, tmp_path: Path) -> AsyncIterator[Front]:
    gw = await start_front(tmp_path, emulator, ONE_OVERLAP_CHANGE_AN_HOUR)
    yield Front(gw, emulator)
    await gw.close()


async def put_pool(
    front: Front, s: aiohttp.ClientSession, change: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    async with s.get(f"{front.url}/api/v1/pools/1", headers=front.auth()) as r:
        pool = await r.json()
    for key, value in change.items():
        if isinstance(value, dict):
            pool.setdefault(key, {}).update(value)
        else:
            pool[key] = value
    async with s.put(f"{front.url}/api/v1/pools/1", json=pool, headers=front.auth()) as r:
        return r.status, await r.json()


async def test_only_overlap_changes_spend_the_overlap_limit_when_pools_are_updated(limited: Front) -> None:
    async with aiohttp.ClientSession() as s:
        for i in range(3):  # other changes: never the overlap limit
            status, _ = await put_pool(limited, s, {"private_comment": f"edit {i}"})
            assert status == 200
        status, pool = await put_pool(limited, s, {"defaults": {"default_overlap_for_new_tasks": 5}})
        assert status == 200 and pool["defaults"]["default_overlap_for_new_tasks"] == 5
        status, body = await put_pool(limited, s, {"defaults": {"default_overlap_for_new_tasks": 7}})
        assert status == 429 and body["code"] == "TOO_MANY_REQUESTS"
        status, _ = await put_pool(limited, s, {"private_comment": "after"})
        assert status == 200
    puts = [r for r in await limited.emulator_requests("/api/v1/pools/1") if r["method"] == "PUT"]
    assert len(puts) == 5  # the refused overlap change never left the gateway
