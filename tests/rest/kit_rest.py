"""toloka-kit 1.2.3 against the gateway's REST front, run in toloka-kit's own virtualenv.

    python kit_rest.py URL TOKEN sync|async basics|flood|get|suites|sync_create|wait

`basics`: get_pool, find_tasks, update_pool, open/close a pool, create_tasks (the default, which
waits on its operation), create_tasks_async + wait_operation. `flood`: THREADS threads reading a pool
ROUNDS times each (`flood THREADS ROUNDS`). `get`: get_pool once. `suites`: create_task_suites (sync via async) and
create_task_suites_async + wait_operation. `sync_create`: create_tasks with
async_mode=False, and create_task. `wait`: wait_operation on the id given after it. Prints one
JSON line of what it saw; a failed check exits non-zero.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import json
import sys
import threading
import uuid
from typing import Any

import toloka.client as toloka
from toloka.async_client import AsyncTolokaClient

URL, TOKEN, MODE, SCENARIO = sys.argv[1:5]
ARGS = sys.argv[5:]


def client() -> Any:
    cls = AsyncTolokaClient if MODE == "async" else toloka.TolokaClient
    return cls(TOKEN, url=URL)


def run(target: Any, method: str, *args: Any, **kwargs: Any) -> Any:
    result = getattr(target, method)(*args, **kwargs)
    if inspect.isawaitable(result):
        return asyncio.new_event_loop().run_until_complete(result)
    return result


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"check failed: {what}")


def basics() -> dict[str, Any]:
    c = client()
    pool = run(c, "get_pool", "1")
    check(pool.id == "1" and pool.project_id == "1", f"get_pool: {pool}")
    found = run(c, "find_tasks", pool_id="2")
    check(len(found.items) == 3, f"find_tasks on pool 2: {len(found.items)} tasks")
    pool.private_comment = "through the gateway"
    updated = run(c, "update_pool", "1", pool)
    check(updated.private_comment == "through the gateway", "update_pool")
    tasks = [
        toloka.Task(pool_id="1", input_values={"image": f"https://example.com/{i}.png"}) for i in range(3)
    ]
    created = run(c, "create_tasks", tasks, allow_defaults=True)
    check(len(created.items) == 3, f"create_tasks: {created}")
    op = run(c, "create_tasks_async", tasks, allow_defaults=True, operation_id=str(uuid.uuid4()))
    done = run(c, "wait_operation", op, timeout=datetime.timedelta(seconds=30))
    check(done.status.value == "SUCCESS", f"create_tasks_async: {done.status}")
    opened = run(c, "open_pool", "1")
    check(opened.status.value == "OPEN", f"open_pool: {opened.status}")
    closed = run(c, "close_pool", "1")
    check(closed.status.value == "CLOSED", f"close_pool: {closed.status}")
    return {"pool": pool.id, "created": len(created.items), "async_op": done.id}


def flood() -> dict[str, Any]:
    threads, rounds = int(ARGS[0]), int(ARGS[1])
    failures: list[str] = []
    done = [0]
    lock = threading.Lock()

    def counted() -> None:
        with lock:
            done[0] += 1

    async def async_rounds() -> None:
        c = client()  # the async client belongs to the loop it was made in
        for _ in range(rounds):
            await c.get_pool("1")
            counted()

    def worker() -> None:
        try:
            if MODE == "async":
                asyncio.new_event_loop().run_until_complete(async_rounds())
                return
            c = client()
            for _ in range(rounds):
                c.get_pool("1")
                counted()
        except Exception as e:  # reported, and the check fails
            with lock:
                failures.append(f"{type(e).__name__}: {e}"[:300])

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    check(not failures, f"flood failures: {failures[:3]}")
    return {"requests": done[0]}


def suites() -> dict[str, Any]:
    c = client()
    made = [
        toloka.TaskSuite(
            pool_id="1", tasks=[toloka.Task(input_values={"image": f"https://example.com/s{i}.png"})]
        )
        for i in range(2)
    ]
    created = run(c, "create_task_suites", made, allow_defaults=True)
    check(len(created.items) == 2, f"create_task_suites: {created}")
    op = run(c, "create_task_suites_async", made, allow_defaults=True, operation_id=str(uuid.uuid4()))
    done = run(c, "wait_operation", op, timeout=datetime.timedelta(seconds=30))
    check(done.status.value == "SUCCESS", f"create_task_suites_async: {done.status}")
    return {"created": len(created.items), "async_op": done.id}


def sync_create() -> dict[str, Any]:
    c = client()
    tasks = [
        toloka.Task(pool_id="1", input_values={"image": f"https://example.com/sync{i}.png"}) for i in range(3)
    ]
    created = run(c, "create_tasks", tasks, allow_defaults=True, async_mode=False)
    check(len(created.items) == 3, f"create_tasks sync: {created}")
    check(
        all(t.input_values["image"].startswith("https://example.com/sync") for t in created.items.values()),
        "echo",
    )
    one = run(
        c,
        "create_task",
        toloka.Task(pool_id="1", input_values={"image": "https://example.com/one.png"}),
        allow_defaults=True,
    )
    check(bool(one.id) and one.pool_id == "1", f"create_task: {one}")
    return {"created": len(created.items), "ids": sorted(t.id for t in created.items.values())}


def get() -> dict[str, Any]:
    pool = run(client(), "get_pool", ARGS[0] if ARGS else "1")
    return {"pool": pool.id}


def wait() -> dict[str, Any]:
    c = client()
    op = run(c, "get_operation", ARGS[0])
    done = run(c, "wait_operation", op, timeout=datetime.timedelta(seconds=60))
    return {"status": done.status.value}


print(
    json.dumps(
        {
            "basics": basics,
            "flood": flood,
            "get": get,
            "suites": suites,
            "sync_create": sync_create,
            "wait": wait,
        }[SCENARIO]()
    )
)
