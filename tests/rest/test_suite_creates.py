"""POST /task-suites with an operation_id: once per id, safe to retry, toloka-kit unchanged."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.emulator.faults import Fault
from tests.rest.conftest import TOKENS, Front, run_kit


def suites(count: int = 2) -> list[dict[str, Any]]:
    return [
        {"pool_id": "1", "tasks": [{"input_values": {"image": f"https://example.com/suite/{i}.png"}}]}
        for i in range(count)
    ]


async def create(
    front: Front, operation_id: str, body: list[dict[str, Any]], *, async_mode: bool = True
) -> tuple[int, Any]:
    params = {"async_mode": str(async_mode).lower(), "allow_defaults": "true", "operation_id": operation_id}
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{front.url}/api/v1/task-suites", params=params, json=body, headers=front.auth()) as r,
    ):
        return r.status, await r.json()


async def posts(front: Front) -> int:
    return sum(1 for r in await front.emulator_requests("/api/v1/task-suites") if r["method"] == "POST")


async def test_concurrent_duplicates_make_one_operation_when_they_share_an_operation_id(front: Front) -> None:
    operation_id = str(uuid.uuid4())
    answers = await asyncio.gather(*(create(front, operation_id, suites()) for _ in range(10)))
    assert {status for status, _ in answers} == {202}
    assert {body["id"] for _, body in answers} == {operation_id}
    assert await posts(front) == 1


async def test_sync_duplicates_get_the_first_answer_when_they_share_an_operation_id(front: Front) -> None:
    """toloka-kit's synchronous create_task_suites sends an operation_id too: one POST, one answer."""
    operation_id = str(uuid.uuid4())
    answers = await asyncio.gather(
        *(create(front, operation_id, suites(), async_mode=False) for _ in range(5))
    )
    assert {status for status, _ in answers} == {201}
    assert len({str(body) for _, body in answers}) == 1  # the same created suites, ids and all
    assert await posts(front) == 1


async def test_sync_create_is_never_resent_when_its_answer_was_lost(front: Front) -> None:
    """Toloka created the suites and the answer was lost: the outcome is reported, never re-sent blind."""
    front.emulator.state.add_fault(Fault(method="POST", path="/api/v1/task-suites$", drop_after_work=True))
    operation_id = str(uuid.uuid4())
    first = await create(front, operation_id, suites(), async_mode=False)
    again = await create(front, operation_id, suites(), async_mode=False)
    assert first[0] == again[0] == 409, (first, again)
    assert first[1]["code"] == again[1]["code"] == "OPERATION_OUTCOME_UNKNOWN", (first, again)
    assert await posts(front) == 1


async def test_reused_operation_id_with_other_suites_is_409_when_sent_again(front: Front) -> None:
    operation_id = str(uuid.uuid4())
    assert (await create(front, operation_id, suites()))[0] == 202
    status, body = await create(front, operation_id, suites(1))
    assert status == 409 and body["code"] == "OPERATION_ALREADY_EXISTS"
    assert await posts(front) == 1


async def test_lost_answer_is_settled_when_toloka_created_the_suites(front: Front) -> None:
    """Toloka creates the suites and the answer is lost: the gateway reads the operation instead of re-sending."""
    front.emulator.state.add_fault(Fault(method="POST", path="/api/v1/task-suites$", drop_after_work=True))
    operation_id = str(uuid.uuid4())
    status, body = await create(front, operation_id, suites())
    assert status == 202 and body["id"] == operation_id
    assert await posts(front) == 1
    assert await front.emulator_requests(f"/api/v1/operations/{operation_id}")  # settled by reading it


async def test_toloka_refusal_is_relayed_and_not_stored_when_toloka_refuses(front: Front) -> None:
    front.emulator.state.add_fault(
        Fault(method="POST", path="/api/v1/task-suites$", status=409, code="POOL_LOCKED_BY_ANOTHER_OPERATION")
    )
    operation_id = str(uuid.uuid4())
    first = await create(front, operation_id, suites())
    assert first[0] == 409 and first[1]["code"] == "POOL_LOCKED_BY_ANOTHER_OPERATION"  # as Toloka sent it
    second = await create(front, operation_id, suites())
    assert second[0] == 202 and second[1]["id"] == operation_id  # the retry asked Toloka again
    assert await posts(front) == 2


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_toloka_kit_creates_task_suites_through_the_front(
    front: Front, kit_python: Path, mode: str
) -> None:
    assert (await run_kit(kit_python, front.url, TOKENS["writer"], mode, "suites"))["created"] == 2
