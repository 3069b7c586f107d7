"""Whether a `PUT /api/v1/pools/{id}` changes the pool's overlap, which Toloka limits on its own
(10 an hour; toloka-api.md section 6): such a PUT counts as `update_pool_overlap`, any other as
`update_pool`. A full-pool PUT always carries the overlap fields, so the stored pool is read first
(one `get_pool` request through the choke point) and compared; when it cannot be read, the PUT
counts as changing the overlap (the safe side of a limit whose 429 pauses the fleet).
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway import errors
from gateway.call import Call
from gateway.request_kinds import KIND_GET_POOL, KIND_UPDATE_POOL, KIND_UPDATE_POOL_OVERLAP
from gateway.rest.relay_protocol import Relay
from gateway.toloka.request import TolokaRequest

# (parent, field) paths of the pool's overlap parameters.
OVERLAP_FIELDS = (
    ("defaults", "default_overlap_for_new_tasks"),
    ("defaults", "default_overlap_for_new_task_suites"),
    ("dynamic_overlap_config", None),
)


def overlap_of(pool: Any) -> tuple[Any, ...]:
    """The pool's overlap parameters, in `OVERLAP_FIELDS` order (None where unset)."""
    if not isinstance(pool, dict):
        return (None,) * len(OVERLAP_FIELDS)
    out: list[Any] = []
    for parent, name in OVERLAP_FIELDS:
        value = pool.get(parent)
        if name is not None:
            value = value.get(name) if isinstance(value, dict) else None
        out.append(value)
    return tuple(out)


async def stored_pool(toloka: Relay, pool_path: str, call: Call) -> Any:
    """The pool as Toloka has it, or None when it cannot be read."""
    request = TolokaRequest(kind=KIND_GET_POOL, method="GET", path=pool_path, relay=True)
    try:
        reply = await toloka.relay(request, call)
    except errors.GatewayError:
        return None
    relayed = reply.relayed
    if relayed is None:
        return reply.data
    try:
        raw = b"".join([chunk async for chunk in relayed.chunks()])
    finally:
        relayed.release()
    if relayed.status != 200:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


async def pool_update_kind(toloka: Relay, pool_path: str, body: Any, call: Call) -> str:
    """`update_pool_overlap` when the PUT changes the stored pool's overlap parameters, else `update_pool`."""
    stored = await stored_pool(toloka, pool_path, call)
    if stored is None or overlap_of(stored) != overlap_of(body):
        return KIND_UPDATE_POOL_OVERLAP
    return KIND_UPDATE_POOL
