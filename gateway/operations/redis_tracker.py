"""Fleet-wide tracker: one replica polls each operation under a lease; every replica's waiters wake.

Each replica runs, per operation with local waiters, an agent that heartbeats every lease_s/3:
one script refreshes the replica's presence in the operation's waiter set and takes the lease
if nobody holds it (SET NX PX with a random token), or renews it while any replica still has
waiters. The holder runs the poll loop, stores each new state and PUBLISHes it; every replica
applies published states to its waiters. A replica that does not hold the lease sleeps no
longer than the lease's remaining TTL, so when a holder dies its lease is taken over within
one lease period. The heartbeat also returns the stored state, which repairs any missed message.

Every Redis round trip is bounded by a short op timeout (see `RedisHealth`). If Redis is
unreachable or hangs, each replica polls its own waiters' operations locally (still one loop per
operation per replica), `degraded` is True and no call touches Redis (so none pays the timeout
again) until the shared background probe gets an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from dataclasses import dataclass

import orjson

from gateway import errors
from gateway.call import Call
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.operations.operation_state import Operation, OperationEntry
from gateway.operations.redis_operation_store import NOT_FOUND_MARK, Heartbeat, RedisOperationStore
from gateway.operations.tracker import FetchOperation
from gateway.operations.tracker_base import TrackerBase
from gateway.settings import PollerSettings
from gateway.shared_state import RedisUnavailable, SharedRedis, Subscription

log = logging.getLogger(__name__)


@dataclass
class _Agent:
    """This replica's part in one operation: whether it holds the lease, and its poll loop."""

    task: asyncio.Task[None] | None = None
    holder: bool = False
    poll: asyncio.Task[None] | None = None


class RedisOperationTracker(TrackerBase):
    """One poll loop per operation across every replica sharing a Redis (standalone or Cluster)."""

    def __init__(
        self,
        *,
        settings: PollerSettings,
        shared: SharedRedis,
        fetch: FetchOperation,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
        replica_id: str | None = None,
    ) -> None:
        super().__init__(settings=settings, fetch=fetch, clock=clock, rng=rng or random.Random())
        self._store = RedisOperationStore(shared=shared, settings=settings)
        self.replica_id = replica_id or uuid.uuid4().hex
        self._token = uuid.uuid4().hex
        self._agents: dict[str, _Agent] = {}
        # Published states reach this replica's waiters; heartbeats repair any missed message.
        self._listener = Subscription(shared, self._store.channel, on_message=self._on_message, clock=clock)
        self._loading: dict[str, asyncio.Future[None]] = {}
        self._closed = False
        self._abandoned = False
        self.lease_acquisitions = 0

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable and operations are polled per replica."""
        return self._store.health.down

    @property
    def active_pollers(self) -> int:
        """Poll loops running in this replica."""
        return sum(1 for a in self._agents.values() if a.poll is not None and not a.poll.done())

    # -- TrackerBase hooks -------------------------------------------------------------------

    def _ensure_polling(self, entry: OperationEntry) -> None:
        if self._closed:
            return
        self._listener.start()
        key = entry.operation_id
        agent = self._agents.get(key)
        if agent is not None and agent.task is not None and not agent.task.done():
            return
        agent = self._agents[key] = _Agent()
        task = agent.task = asyncio.create_task(self._run_agent(entry, agent), name=f"operations:agent:{key}")
        task.add_done_callback(lambda t: self._agents.pop(key) if self._agents.get(key) is agent else None)

    async def _load(self, entry: OperationEntry, call: Call) -> None:
        agent = self._agents.get(entry.operation_id)
        if agent is not None and agent.task is not None and not agent.task.done():
            return  # its heartbeats and messages keep the entry current
        key = entry.operation_id
        read = self._loading.get(key)
        if read is None:  # one read per operation however many arrive together
            within = None if call.deadline is None else call.deadline - self._clock.now()
            read = self._loading[key] = asyncio.ensure_future(self._read_into(entry, within))
            read.add_done_callback(lambda f: self._loading.pop(key) if self._loading.get(key) is f else None)
        await asyncio.shield(read)

    async def _read_into(self, entry: OperationEntry, within_s: float | None) -> None:
        try:
            raw = await self._store.read(entry.operation_id, within_s=within_s)
        except RedisUnavailable:
            return
        self._apply(entry, raw, fresh=False)

    async def _publish(self, entry: OperationEntry, op: Operation) -> None:
        # Stored before it is applied locally, for the same reason as `_publish_not_found`: a
        # final state settles the entry, which releases the lease.
        with contextlib.suppress(RedisUnavailable):
            await self._store.store(op)
        entry.update(op, self._clock.now())

    async def _publish_not_found(self, entry: OperationEntry, error: errors.NotFound) -> None:
        # Mark it in Redis BEFORE settling locally: settling ends this replica's agent, which
        # releases the lease, and a replica that took the lease before the mark landed would
        # read Toloka again.
        with contextlib.suppress(RedisUnavailable):
            await self._store.mark_not_found(entry.operation_id)
        await super()._publish_not_found(entry, error)

    async def _share_pools(self, operation_id: str, pools: frozenset[str]) -> None:
        try:
            await self._store.record_pools(operation_id, pools)
        except RedisUnavailable:
            # This replica still knows them; on other replicas a caller limited to some pools is
            # refused this operation (PERMISSION_DENIED), as for any operation of unknown pools.
            log.warning("operations: could not record the pools of operation %s", operation_id)

    async def _shared_pools(self, operation_id: str) -> frozenset[str] | None:
        try:
            return await self._store.read_pools(operation_id)
        except RedisUnavailable:
            raise errors.shared_state_unavailable(
                "cannot check which pools this operation touches while the shared state is unreachable"
            ) from None

    # -- agents ------------------------------------------------------------------------------

    async def _run_agent(self, entry: OperationEntry, agent: _Agent) -> None:
        """Heartbeat until the operation is final or no replica waits; poll while holding the lease."""
        interval = self._settings.lease_s / 3
        try:
            while not self._closed:
                local = entry.waiters > 0
                beat = await self._beat(entry, local)
                if beat is not None:
                    self._apply(entry, beat.state, fresh=False)
                    if beat.holder and not agent.holder:
                        self.lease_acquisitions += 1
                agent.holder = beat.holder if beat is not None else local
                if entry.settled or not (local or agent.holder):
                    break
                self._steer_poll(entry, agent)
                delay = interval
                if beat is not None and not beat.holder and beat.lease_ttl_s > 0:
                    delay = min(delay, beat.lease_ttl_s + 0.002)  # try again the moment it expires
                await self._clock.sleep(delay)
        finally:
            agent.holder = False
            if agent.poll is not None:
                agent.poll.cancel()
        if not self._abandoned:
            with contextlib.suppress(RedisUnavailable):
                await self._store.release(entry.operation_id, replica=self.replica_id, token=self._token)

    async def _beat(self, entry: OperationEntry, local: bool) -> Heartbeat | None:
        """The heartbeat's answer, or None while Redis is unreachable (then this replica polls)."""
        try:
            return await self._store.heartbeat(
                entry.operation_id, replica=self.replica_id, token=self._token, has_waiters=local
            )
        except RedisUnavailable:
            return None

    def _steer_poll(self, entry: OperationEntry, agent: _Agent) -> None:
        running = agent.poll is not None and not agent.poll.done()
        if agent.holder and not running:
            agent.poll = asyncio.create_task(
                self._poll(entry, lambda: agent.holder), name=f"operations:poll:{entry.operation_id}"
            )
        elif not agent.holder and running and agent.poll is not None:
            agent.poll.cancel()

    # -- states from Redis -------------------------------------------------------------------

    def _apply(self, entry: OperationEntry, raw: bytes, *, fresh: bool) -> None:
        """Take a stored or published state; a state read back has unknown age, so it is not fresh."""
        if not raw:
            return
        if raw == NOT_FOUND_MARK:
            if entry.op is None:
                entry.fail(errors.NotFound(f"operation {entry.operation_id} does not exist"))
                self._board.forget(entry)
            return
        entry.update(orjson.loads(raw), self._clock.now() if fresh else float("-inf"))

    def _on_message(self, raw: bytes) -> None:
        if raw.startswith(NOT_FOUND_MARK):
            entry = self._board.get(raw[1:].decode())
            if entry is not None:
                self._apply(entry, NOT_FOUND_MARK, fresh=True)
            return
        op = orjson.loads(raw)
        entry = self._board.get(str(op.get("id")))
        if entry is not None:
            entry.update(op, self._clock.now())

    # -- lifecycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop agents and loops, giving up leases so another replica takes over at once."""
        agents = list(self._agents.items())
        await self._cancel_tasks()
        for key, _agent in agents:
            with contextlib.suppress(RedisUnavailable):
                await self._store.release(key, replica=self.replica_id, token=self._token)

    async def abandon(self) -> None:
        """Stop every task without telling Redis, as a crashed replica would (failover drills)."""
        self._abandoned = True
        await self._cancel_tasks()

    async def _cancel_tasks(self) -> None:
        self._closed = True
        await self._listener.close()
        tasks = {t for a in self._agents.values() for t in (a.task, a.poll) if t is not None}
        # Cancel more than once: on Python 3.11 asyncio.wait_for (used inside redis-py) can
        # swallow a cancellation that races with its own completion.
        pending = tasks
        for _ in range(5):
            if not pending:
                break
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=1.0)
        for task in tasks - pending:
            if not task.cancelled():
                task.exception()
        self._agents.clear()
