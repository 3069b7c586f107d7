"""Each row of Toloka's per-method table can be limited on its own, by request kind, over REST."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateway.emulator.server import EmulatorServer
from gateway.rest.routes import classify
from tests.rest.conftest import Front, start_front

ONE_NEW_POOL_A_MINUTE = """
[rate_limits]
max_wait = "200ms"
limits = [
  { name = "account_per_second", kinds = ["*"], capacity = 300, period = "1s" },
  { name = "create_pools_per_minute", kinds = ["create_pool"], capacity = 1, period = "1m" },
]
"""


@pytest.fixture
async def limited(emulator: EmulatorServer, tmp_path: Path) -> AsyncIterator[Front]:
    gw = await start_front(tmp_path, emulator, ONE_NEW_POOL_A_MINUTE)
    yield Front(gw, emulator)
    await gw.close()


async def test_a_kind_limit_refuses_only_its_kind_when_it_is_spent(limited: Front) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{limited.url}/api/v1/pools/1", headers=limited.auth()) as r:
            pool = await r.json()
        for key in ("id", "created", "last_started", "last_stopped", "status", "last_close_reason"):
            pool.pop(key, None)
        async with s.post(f"{limited.url}/api/v1/pools", json=pool, headers=limited.auth()) as r:
            assert r.status == 201, await r.text()
        async with s.post(f"{limited.url}/api/v1/pools", json=pool, headers=limited.auth()) as r:
            assert r.status == 429
            body = await r.json()
        async with s.get(f"{limited.url}/api/v1/pools/1", headers=limited.auth()) as r:
            assert r.status == 200  # other kinds still pass
    assert body["code"] == "TOO_MANY_REQUESTS"
    assert "create_pools_per_minute" in str(body["payload"]["quota"])
    posts = [r for r in await limited.emulator_requests("/api/v1/pools") if r["method"] == "POST"]
    assert len(posts) == 1


@pytest.mark.parametrize(
    ("method", "path", "body", "kind", "cost"),
    [
        ("POST", "/tasks", [{}, {}, {}], "create_tasks", 3),
        ("POST", "/task-suites", [{}, {}], "create_task_suites", 2),
        ("POST", "/pools", {}, "create_pool", 1),
        ("POST", "/training-pools", {}, "create_pool", 1),
        ("POST", "/projects", {}, "create_project", 1),
        ("POST", "/pools/12/clone", None, "clone_pool", 1),
        ("POST", "/pools/12/open", None, "pool_action", 1),
        ("POST", "/aggregated-solutions/aggregate-by-pool", {}, "aggregate", 1),
        ("PUT", "/user-skills", {}, "set_user_skill", 1),
        ("POST", "/skills", {}, "create_skill", 1),
        ("POST", "/user-bonuses", {}, "issue_bonus", 1),
        ("POST", "/message-threads/compose", {}, "message", 1),
        ("GET", "/assignments", None, "read", 1),
        ("PATCH", "/assignments/0001abc", {}, "other", 1),
    ],
)
def test_request_kind_follows_the_per_method_table_when_classified(
    method: str, path: str, body: object, kind: str, cost: int
) -> None:
    route = classify(method, path, body)
    assert (route.kind, route.cost) == (kind, cost)
