"""The `Toloka` protocol: the endpoints the use cases call, so they depend on no HTTP client.

`TolokaClient` implements it over HTTP; a test can hand a use case anything with these methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from gateway.call import Call
from gateway.toloka.request import BeforeSend, Reply
from gateway.translate.tasks import CreateTasksPlan


class Toloka(Protocol):
    """Toloka's requester API as the gateway's use cases see it."""

    async def create_tasks(
        self, plan: CreateTasksPlan, *, call: Call, before_send: BeforeSend | None = None
    ) -> Reply:
        """Create the planned tasks once per operation_id: the Operation (async) or the batch (sync).

        A synchronous create that Toloka may have performed raises OutcomeUnknown and is never
        re-sent; `before_send` runs once, right before its first attempt leaves.
        """
        ...

    async def get_operation(self, operation_id: str, call: Call) -> dict[str, Any]:
        """The operation's current state."""
        ...

    async def get_operation_log(self, operation_id: str, call: Call) -> list[dict[str, Any]]:
        """A finished operation's log: one item per task, in input order."""
        ...

    async def get_pool(self, pool_id: str, call: Call) -> dict[str, Any]:
        """The whole pool."""
        ...

    async def update_pool(
        self, pool_id: str, pool: Mapping[str, Any], *, changes_overlap: bool, call: Call
    ) -> dict[str, Any]:
        """Replace the whole pool; the reply is the pool Toloka stored."""
        ...

    async def pool_action(self, pool_id: str, action: str, call: Call) -> dict[str, Any] | None:
        """Open, close, close-for-update or archive a pool: its Operation, or None when already done."""
        ...
