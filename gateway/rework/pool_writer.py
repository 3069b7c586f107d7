"""Writing a whole pool: PUT directly when closed; close-for-update, PUT, reopen when open.

Once close-for-update has been asked for, the pool is reopened whatever happens next (the PUT
failing, the close operation failing, the caller going away), under a fresh deadline of
`reopen_grace_s`, because the caller's deadline may be what failed. Toloka would reopen it by
itself only after 15 minutes.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from gateway import errors
from gateway.call import Call
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.operations.poll_schedule import PollSchedule
from gateway.settings import PollerSettings, ReworkSettings
from gateway.toloka.protocol import Toloka
from gateway.translate.operations import is_final

log = logging.getLogger(__name__)

# A pool action's operation takes about a second: poll it quickly, backing off to 1 s.
POLL_SCHEDULE = PollerSettings(initial_interval_s=0.05, max_interval_s=1.0, multiplier=1.5, jitter=0.2)


class PoolWriter:
    """PUTs a pool, closing it for the update and reopening it when it was open."""

    def __init__(
        self,
        *,
        toloka: Toloka,
        settings: ReworkSettings,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ) -> None:
        self._toloka = toloka
        self._settings = settings
        self._clock = clock
        self._rng = rng or random.Random()

    async def write(
        self, pool_id: str, pool: Mapping[str, Any], *, was_open: bool, call: Call
    ) -> dict[str, Any]:
        """PUT `pool` (counted as an overlap change); the reply is the pool Toloka stored."""
        if not was_open:
            return await self._toloka.update_pool(pool_id, pool, changes_overlap=True, call=call)
        try:
            await self._run_action(pool_id, "close-for-update", call)
            stored = await self._toloka.update_pool(pool_id, pool, changes_overlap=True, call=call)
        except BaseException:
            # Reopen, then re-raise the original failure; a failure to reopen is only logged.
            await asyncio.shield(self._reopen(pool_id, call, quiet=True))
            raise
        await asyncio.shield(self._reopen(pool_id, call, quiet=False))
        return stored

    async def _reopen(self, pool_id: str, call: Call, *, quiet: bool) -> None:
        grace = replace(
            call, deadline=self._clock.now() + self._settings.reopen_grace_s, toloka_request_ids=[]
        )
        try:
            await self._run_action(pool_id, "open", grace)
        except errors.GatewayError as e:
            if quiet:
                log.warning("could not reopen pool %s after a failed update: %s", pool_id, e.message)
                return
            raise errors.FailedPrecondition(
                f"the rework rules of pool {pool_id} were written, but reopening the pool failed: {e.message}",
                reason="POOL_REOPEN_FAILED",
                toloka_code=e.toloka_code,
                toloka_request_id=e.toloka_request_id,
                metadata={"rules_written": "true"},
            ) from e
        finally:
            call.toloka_request_ids.extend(grace.toloka_request_ids)

    async def _run_action(self, pool_id: str, action: str, call: Call) -> None:
        """POST the pool action and wait for its operation (a 204 means already there)."""
        op = await self._toloka.pool_action(pool_id, action, call)
        if op is None:
            return
        op = await self._wait(op, call)
        if op.get("status") != "SUCCESS":
            raise errors.FailedPrecondition(
                f"Toloka could not {action} pool {pool_id}: operation {op.get('id')} ended {op.get('status')}",
                reason="POOL_OPERATION_FAILED",
                metadata={"operation_id": str(op.get("id", "")), "action": action},
            )

    async def _wait(self, op: dict[str, Any], call: Call) -> dict[str, Any]:
        """Poll the operation (the poller's backoff schedule) until SUCCESS or FAIL.

        Bounded by `operation_wait_s` and by the call's deadline: no sleep outlasts either, and
        each read carries the call, so the Toloka client bounds it by the deadline too. (One
        operation, one caller, under the pool lock: the shared tracker would add nothing here.)
        """
        until = self._clock.now() + self._settings.operation_wait_s
        schedule = PollSchedule(settings=POLL_SCHEDULE, rng=self._rng)
        delay = schedule.first()
        while not is_final(op):
            left = until - self._clock.now()
            call_left = call.remaining()
            if call_left is not None and call_left <= min(delay, left):
                raise errors.DeadlineExceeded(f"the deadline passed while operation {op.get('id')} ran")
            if left <= 0:
                raise errors.Unavailable(
                    f"operation {op.get('id')} did not finish within {self._settings.operation_wait_s}s",
                    reason="POOL_OPERATION_SLOW",
                )
            await self._clock.sleep(min(delay, left))
            op = await self._toloka.get_operation(str(op["id"]), call)
            # Never reset: a pool operation's progress moves on every read, and resetting would
            # keep polling at the initial interval for the whole operation.
            delay = schedule.next(changed=False)
        return op
