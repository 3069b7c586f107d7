"""Where REST and gRPC overlap they are one: one operation per operation_id, one poll loop per operation."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import grpc
import pytest

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.translate.values import json_to_struct
from tests.rest.conftest import TOKENS, Front

IMAGES = [f"https://example.com/shared/{i}.png" for i in range(3)]


def rest_tasks() -> list[dict[str, Any]]:
    return [{"pool_id": "1", "input_values": {"image": image}} for image in IMAGES]


def grpc_request(operation_id: str, *, is_async: bool = True) -> pb.CreateTasksRequest:
    req = pb.CreateTasksRequest(operation_id=operation_id, async_mode=is_async, allow_defaults=True)
    for image in IMAGES:
        json_to_struct({"image": image}, req.tasks.add(pool_id="1").input_values)
    return req


def bearer(caller: str = "writer") -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {TOKENS[caller]}"),)


async def rest_create(
    front: Front, operation_id: str, tasks: list[dict[str, Any]], *, is_async: bool = True
) -> tuple[int, dict[str, Any]]:
    params = {"async_mode": str(is_async).lower(), "allow_defaults": "true", "operation_id": operation_id}
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{front.url}/api/v1/tasks", params=params, json=tasks, headers=front.auth()) as r,
    ):
        return r.status, await r.json()


async def creates_seen(front: Front) -> list[dict[str, Any]]:
    return [r for r in await front.emulator_requests("/api/v1/tasks") if r["method"] == "POST"]


@pytest.mark.parametrize("grpc_first", [True, False])
async def test_one_operation_when_grpc_and_rest_send_the_same_operation_id(
    front: Front, grpc_first: bool
) -> None:
    operation_id = str(uuid.uuid4())
    stub = front.gateway.stub
    if grpc_first:
        first = await stub.CreateTasks(grpc_request(operation_id), metadata=bearer())
        status, body = await rest_create(front, operation_id, rest_tasks())
        assert not first.replayed
    else:
        status, body = await rest_create(front, operation_id, rest_tasks())
        second = await stub.CreateTasks(grpc_request(operation_id), metadata=bearer())
        assert second.replayed
    assert status == 202, body
    assert body["id"] == operation_id and body["type"] == "TASK.BATCH_CREATE"
    assert len(await creates_seen(front)) == 1


async def test_reused_operation_id_with_other_tasks_is_409_when_sent_over_rest(front: Front) -> None:
    operation_id = str(uuid.uuid4())
    await front.gateway.stub.CreateTasks(grpc_request(operation_id), metadata=bearer())
    status, body = await rest_create(front, operation_id, rest_tasks()[:1])
    assert status == 409
    assert body["code"] == "OPERATION_ALREADY_EXISTS" and body["request_id"]
    assert len(await creates_seen(front)) == 1


async def test_concurrent_rest_duplicates_make_one_operation_when_sent_together(front: Front) -> None:
    operation_id = str(uuid.uuid4())
    answers = await asyncio.gather(*(rest_create(front, operation_id, rest_tasks()) for _ in range(20)))
    assert {status for status, _ in answers} == {202}
    assert {body["id"] for _, body in answers} == {operation_id}
    assert len(await creates_seen(front)) == 1


async def test_a_thousand_rest_waiters_cost_one_poll_loop_when_they_poll_one_operation(front: Front) -> None:
    front.emulator.state.operation_duration_s = 2.0
    operation_id = str(uuid.uuid4())
    status, _ = await rest_create(front, operation_id, rest_tasks())
    assert status == 202
    url = f"{front.url}/api/v1/operations/{operation_id}"
    finals: list[str] = []

    async def waiter(s: aiohttp.ClientSession) -> None:
        while True:
            async with s.get(url, headers=front.auth()) as r:
                assert r.status == 200, await r.text()
                op = await r.json()
            if op["status"] in ("SUCCESS", "FAIL", "EXPIRED"):
                finals.append(op["status"])
                return
            await asyncio.sleep(0.25)  # toloka-kit's own pause between polls is 1 s

    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as s:
        await asyncio.gather(*(waiter(s) for _ in range(1000)))
    assert finals == ["SUCCESS"] * 1000
    reads = await front.emulator_requests(f"/api/v1/operations/{operation_id}")
    # One loop over ~2 s at the poller's pace, not one per waiter (1,000 waiters x several polls each).
    assert 1 <= len(reads) <= 12, len(reads)


async def test_pool_limited_caller_reads_only_operations_in_its_pools(front: Front) -> None:
    operation_id = str(uuid.uuid4())
    await rest_create(front, operation_id, rest_tasks())
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{front.url}/api/v1/operations/{operation_id}", headers=front.auth("pool4")) as r:
            assert r.status == 403
            assert (await r.json())["code"] == "ACCESS_DENIED"
        async with s.get(f"{front.url}/api/v1/operations/{operation_id}", headers=front.auth("reader")) as r:
            assert r.status == 200


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_toloka_kit_waits_on_an_operation_when_grpc_started_it(
    front: Front, kit_python: Any, mode: str
) -> None:
    from tests.rest.conftest import run_kit

    operation_id = str(uuid.uuid4())
    await front.gateway.stub.CreateTasks(grpc_request(operation_id), metadata=bearer())
    result = await run_kit(kit_python, front.url, TOKENS["reader"], mode, "wait", operation_id)
    assert result == {"status": "SUCCESS"}


async def test_grpc_caller_denied_create_tasks_cannot_create_over_rest_when_limited_to_reads(
    front: Front,
) -> None:
    status, _ = await rest_create(front, str(uuid.uuid4()), rest_tasks())
    assert status == 202
    params = {"async_mode": "true", "operation_id": str(uuid.uuid4())}
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{front.url}/api/v1/tasks", params=params, json=rest_tasks(), headers=front.auth("reader")
        ) as r,
    ):
        assert r.status == 403
    with pytest.raises(grpc.aio.AioRpcError):
        await front.gateway.stub.CreateTasks(grpc_request(str(uuid.uuid4())), metadata=bearer("reader"))


@pytest.mark.parametrize("grpc_first", [True, False])
async def test_one_sync_create_when_grpc_and_rest_send_the_same_operation_id(
    front: Front, grpc_first: bool
) -> None:
    operation_id = str(uuid.uuid4())
    stub = front.gateway.stub
    if grpc_first:
        over_grpc = await stub.CreateTasks(grpc_request(operation_id, is_async=False), metadata=bearer())
        status, body = await rest_create(front, operation_id, rest_tasks(), is_async=False)
    else:
        status, body = await rest_create(front, operation_id, rest_tasks(), is_async=False)
        over_grpc = await stub.CreateTasks(grpc_request(operation_id, is_async=False), metadata=bearer())
    assert status == 201, body
    assert {k: v["id"] for k, v in body["items"].items()} == {
        str(i): t.id for i, t in over_grpc.batch.items.items()
    }
    assert [body["items"][str(i)]["input_values"]["image"] for i in range(3)] == IMAGES
    assert len(await creates_seen(front)) == 1


async def test_sync_duplicates_get_the_first_tasks_when_sent_together(front: Front) -> None:
    operation_id = str(uuid.uuid4())
    answers = await asyncio.gather(
        *(rest_create(front, operation_id, rest_tasks(), is_async=False) for _ in range(8))
    )
    assert {status for status, _ in answers} == {201}
    assert len({tuple(sorted(v["id"] for v in body["items"].values())) for _, body in answers}) == 1
    assert len(await creates_seen(front)) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_toloka_kit_creates_tasks_synchronously_through_the_front(
    front: Front, kit_python: Any, mode: str
) -> None:
    from tests.rest.conftest import run_kit

    result = await run_kit(kit_python, front.url, TOKENS["writer"], mode, "sync_create")
    assert result["created"] == 3 and len(set(result["ids"])) == 3
