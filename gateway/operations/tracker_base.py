"""What both trackers share: waiting, watching, single-flight reads and the poll loop itself.

A backend decides WHERE the loop runs (`_ensure_polling`) and where a new state goes
(`_publish`); everything a waiter sees comes from its process's `OperationEntry`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

from gateway import errors
from gateway.call import Call
from gateway.clock import Clock
from gateway.observability import tracing
from gateway.operations.operation_state import Operation, OperationBoard, OperationEntry
from gateway.operations.poll_schedule import PollSchedule
from gateway.operations.tracker import FetchOperation
from gateway.settings import PollerSettings

POLLER_CALLER = "operation-poller"
# Operations whose pools this process remembers without asking shared state (oldest dropped first).
POOLS_KEPT = 100_000
log = logging.getLogger(__name__)


class TrackerBase:
    """The shared half of an OperationTracker; subclasses run the loops.

    `clock` (`gateway.clock`) must be in the domain of `Call.deadline` (SYSTEM_CLOCK in production):
    freshness, wait deadlines and the poll loop's sleeps all read it.
    Counters for metrics: `polls` (upstream reads made here), `fetch_errors`, `waiters`
    (waits and watches in progress here) and `active_pollers` (loops running here).
    """

    def __init__(
        self,
        *,
        settings: PollerSettings,
        fetch: FetchOperation,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self._settings = settings
        self._fetch = fetch
        self._clock = clock
        self._rng = rng
        self._board = OperationBoard()
        self.polls = 0
        self.fetch_errors = 0
        self.waiters = 0
        self._draining = False
        self._drained: asyncio.Future[None] | None = None
        self._pools: OrderedDict[str, frozenset[str]] = OrderedDict()

    # -- hooks -------------------------------------------------------------------------------

    @property
    def active_pollers(self) -> int:
        """Poll loops running in this process."""
        raise NotImplementedError

    def _ensure_polling(self, entry: OperationEntry) -> None:
        """Make sure some loop keeps `entry` current while it has waiters."""
        raise NotImplementedError

    async def _load(self, entry: OperationEntry, call: Call) -> None:
        """Bring `entry` up to date from shared state, if there is any (no upstream call).

        Bounded by a short op timeout and by `call`'s deadline; never raises for a backend fault.
        """

    async def _publish(self, entry: OperationEntry, op: Operation) -> None:
        """Record a state read from Toloka or handed to `remember`."""
        entry.update(op, self._clock.now())

    async def _publish_not_found(self, entry: OperationEntry, error: errors.NotFound) -> None:
        """Tell every waiter that the operation does not exist."""
        entry.fail(error)
        self._board.forget(entry)

    async def _share_pools(self, operation_id: str, pools: frozenset[str]) -> None:
        """Hook: make an operation's pools known to other replicas (never raises)."""

    async def _shared_pools(self, operation_id: str) -> frozenset[str] | None:
        """Hook: the pools another replica recorded, or None (raises errors.Unavailable)."""
        return None

    # -- OperationTracker --------------------------------------------------------------------

    async def remember(self, operation: dict[str, Any], *, pools: Collection[str] = ()) -> None:
        """Record an operation Toloka just returned, so a wait can start from it."""
        operation_id = str(operation["id"])
        if pools:
            self._keep_pools(operation_id, frozenset(pools))
            await self._share_pools(operation_id, frozenset(pools))
        await self._publish(self._board.entry(operation_id), operation)

    async def pools_of(self, operation_id: str) -> frozenset[str] | None:
        """The pools recorded for an operation here or on another replica, or None."""
        pools = self._pools.get(operation_id)
        if pools is None:
            pools = await self._shared_pools(operation_id)
            if pools is not None:
                self._keep_pools(operation_id, pools)
        return pools

    def _keep_pools(self, operation_id: str, pools: frozenset[str]) -> None:
        self._pools[operation_id] = pools
        self._pools.move_to_end(operation_id)
        while len(self._pools) > POOLS_KEPT:
            self._pools.popitem(last=False)

    async def get(self, operation_id: str, *, call: Call) -> dict[str, Any]:
        """The cached state when final or fresher than `fresh_s`, else one shared read."""
        entry = self._board.entry(operation_id)
        if not self._usable(entry):
            await self._load(entry, call)
        if self._usable(entry) and entry.op is not None:
            return entry.op
        return await self._fetch_shared(entry, call)

    async def wait(self, operation_id: str, *, until: float | None, call: Call) -> dict[str, Any]:
        """The final state, or the latest one at `until` / `call.deadline` (whichever is first).

        Reaching the deadline is not an error. NotFound is raised only when the first read of
        an unknown operation says so; transient faults while polling are retried. When nothing
        is known when `until` passes (a timeout of 0, say), one shared read bounded by the
        call's deadline still runs; only if that fails or cannot finish in time is it an error.
        After `drain()` every wait returns what is known at once.
        """
        entry = self._board.entry(operation_id)
        deadline = self._deadline(until, call)
        if not entry.final:
            await self._load(entry, call)
        if not entry.settled and self._clock.now() < deadline and not self._draining:
            with self._waiting(entry):
                timer = asyncio.ensure_future(self._clock.sleep(deadline - self._clock.now()))
                try:
                    while not entry.settled and not timer.done() and not self._draining:
                        changed = (entry.next_change(), timer, self._drain_signal())
                        await asyncio.wait(changed, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    timer.cancel()
        if entry.op is None and entry.error is None:
            await self._read_within_call(entry, call)
        return self._outcome(entry)

    async def watch(self, operation_id: str, *, call: Call) -> AsyncIterator[dict[str, Any]]:
        """The current state, then every change of status or progress; ends after a final one."""
        entry = self._board.entry(operation_id)
        deadline = self._deadline(None, call)
        if not entry.final:
            await self._load(entry, call)
        seen = entry.version - 1 if entry.op is not None else 0
        with self._waiting(entry):
            timer = asyncio.ensure_future(self._clock.sleep(max(0.0, deadline - self._clock.now())))
            try:
                while True:
                    for version, op in entry.changes_since(seen):
                        seen = version
                        yield op
                    if entry.error is not None:
                        raise entry.error
                    if entry.final or timer.done() or self._draining:
                        break
                    changed = (entry.next_change(), timer, self._drain_signal())
                    await asyncio.wait(changed, return_when=asyncio.FIRST_COMPLETED)
            finally:
                timer.cancel()
        if entry.op is None:
            self._outcome(entry)

    async def drain(self) -> None:
        """Shutting down: every current and later `wait` returns its latest state now; `watch` ends."""
        self._draining = True
        self._drain_signal()

    # -- shared machinery --------------------------------------------------------------------

    def _drain_signal(self) -> asyncio.Future[None]:
        """One future for all waiters, resolved by `drain` (never cancel it: it is shared)."""
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()
        if self._draining and not self._drained.done():
            self._drained.set_result(None)
        return self._drained

    async def _read_within_call(self, entry: OperationEntry, call: Call) -> None:
        """One shared upstream read, bounded by the call's deadline only (not by `until`)."""
        left = None if call.deadline is None else call.deadline - self._clock.now()
        if left is not None and left <= 0:
            return
        try:
            async with asyncio.timeout(left):
                await self._fetch_shared(entry, call)
        except TimeoutError:
            return
        except errors.NotFound as e:
            if entry.op is None:
                await self._publish_not_found(entry, e)
        except errors.GatewayError as e:
            entry.last_error = e

    def _usable(self, entry: OperationEntry) -> bool:
        return entry.op is not None and (
            entry.final or self._clock.now() - entry.updated_at <= self._settings.fresh_s
        )

    def _deadline(self, until: float | None, call: Call) -> float:
        limits = [self._clock.now() + self._settings.max_wait_s]
        limits += [t for t in (until, call.deadline) if t is not None]
        return min(limits)

    def _outcome(self, entry: OperationEntry) -> Operation:
        if entry.error is not None:
            raise entry.error
        if entry.op is None:
            if entry.last_error is not None:
                raise entry.last_error
            raise errors.DeadlineExceeded(f"no state of operation {entry.operation_id} was known in time")
        return entry.op

    @contextmanager
    def _waiting(self, entry: OperationEntry) -> Iterator[None]:
        entry.waiters += 1
        self.waiters += 1
        try:
            if not entry.settled:
                self._ensure_polling(entry)
            yield
        finally:
            entry.waiters -= 1
            self.waiters -= 1

    async def _fetch_shared(self, entry: OperationEntry, call: Call) -> Operation:
        """One upstream read per operation at a time; concurrent readers share it."""
        if entry.inflight is None:
            task = asyncio.ensure_future(self._fetch_and_publish(entry, call))
            entry.inflight = task
            task.add_done_callback(lambda t: _settle_inflight(entry, t))
        return await asyncio.shield(entry.inflight)

    async def _fetch_and_publish(self, entry: OperationEntry, call: Call) -> Operation:
        if not tracing.enabled:
            return await self._read_and_publish(entry, call)
        attributes = {"gateway.operation_id": entry.operation_id, "gateway.poll.waiters": entry.waiters}
        with tracing.span("operation.poll", attributes):
            return await self._read_and_publish(entry, call)

    async def _read_and_publish(self, entry: OperationEntry, call: Call) -> Operation:
        self.polls += 1
        try:
            op = await self._fetch(entry.operation_id, call)
        except errors.GatewayError:
            self.fetch_errors += 1
            raise
        await self._publish(entry, op)
        return op

    async def _poll(self, entry: OperationEntry, keep_going: Callable[[], bool]) -> None:
        """The poll loop of one operation: backoff with jitter, reset when it moves."""
        schedule = PollSchedule(settings=self._settings, rng=self._rng)
        delay = 0.0 if entry.op is None else schedule.first()
        budget = max(self._settings.lease_s, self._settings.max_interval_s)
        while True:
            if delay > 0:
                await self._clock.sleep(delay)
            if entry.settled or not keep_going():
                return
            before = entry.version
            try:
                await self._fetch_shared(
                    entry, Call(caller=POLLER_CALLER, deadline=self._clock.now() + budget)
                )
            except errors.NotFound as e:
                if entry.op is None:
                    await self._publish_not_found(entry, e)
                    return
                log.warning("operation %s: read failed, will retry: %s", entry.operation_id, e)
            except errors.GatewayError as e:
                entry.last_error = e
                log.warning("operation %s: read failed, will retry: %s", entry.operation_id, e)
            except Exception:  # a bug must not silence the loop every waiter depends on
                log.exception("operation %s: unexpected failure while polling", entry.operation_id)
            if entry.settled:
                return
            delay = schedule.next(changed=entry.version != before)


def _settle_inflight(entry: OperationEntry, task: asyncio.Future[Operation]) -> None:
    if entry.inflight is task:
        entry.inflight = None
    if not task.cancelled():
        task.exception()  # retrieved here so an unshared failure is not reported as lost
