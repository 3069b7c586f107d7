"""One behavioural suite for every Deduplicator backend: in-process, Redis, Redis Cluster."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest

from gateway import errors
from gateway.call import Call
from gateway.dedupe.store import HeldClaim
from tests.dedupe.conftest import Harness


class Producer:
    """A produce() that counts its runs and can be held at a gate or made to fail.

    With `sends=True` it marks its claim sent first, as a synchronous create does before its
    request leaves.
    """

    def __init__(
        self, outcome: bytes = b"op-1", *, gate: asyncio.Event | None = None, sends: bool = False
    ) -> None:
        self.outcome = outcome
        self.gate = gate
        self.sends = sends
        self.sent = 0
        self.runs = 0
        self.fail: BaseException | None = None

    async def __call__(self, claim: HeldClaim) -> bytes:
        self.runs += 1
        if self.sends:
            await claim.sending()
            self.sent += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return self.outcome


def op_id() -> str:
    return str(uuid.uuid4())


def call(deadline_s: float | None = 10.0) -> Call:
    return Call(deadline=None if deadline_s is None else time.monotonic() + deadline_s)


async def until(predicate: Callable[[], bool], within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_first_call_runs_produce_and_later_calls_replay_when_key_repeats(harness: Harness) -> None:
    store = harness.make()
    key, produce = op_id(), Producer(b"\x08\x01operation")
    assert await store.run(key, "fp", produce, call=call()) == (b"\x08\x01operation", False)
    assert await store.run(key, "fp", produce, call=call()) == (b"\x08\x01operation", True)
    other = harness.replica(store)
    assert await other.run(key, "fp", produce, call=call()) == (b"\x08\x01operation", True)
    assert produce.runs == 1
    assert store.counters.claims == 1


async def test_produce_runs_once_when_fifty_duplicates_arrive_together(harness: Harness) -> None:
    first = harness.make()
    stores = [first, harness.replica(first)]
    key, produce = op_id(), Producer(b"shared", gate=asyncio.Event())
    tasks = [asyncio.create_task(stores[i % 2].run(key, "fp", produce, call=call())) for i in range(50)]
    await until(lambda: produce.runs == 1 and sum(s.counters.waits for s in set(stores)) == 49)
    assert produce.gate is not None
    produce.gate.set()
    results = await asyncio.gather(*tasks)
    assert produce.runs == 1
    assert {outcome for outcome, _ in results} == {b"shared"}
    assert sorted(replayed for _, replayed in results) == [False] + [True] * 49


async def test_reuse_is_refused_when_fingerprint_differs(harness: Harness) -> None:
    store = harness.make()
    stored, in_flight = op_id(), f"tasks:{op_id()}"  # callers may namespace their keys
    await store.run(stored, "fp-a", Producer(), call=call())
    holder = Producer(gate=asyncio.Event())
    task = asyncio.create_task(store.run(in_flight, "fp-a", holder, call=call()))
    await until(lambda: holder.runs == 1)
    for key in (stored, in_flight):
        with pytest.raises(errors.AlreadyExists) as info:
            await harness.replica(store).run(key, "fp-b", Producer(), call=call())
        assert info.value.reason == "OPERATION_ID_REUSED"
        assert info.value.metadata == {"operation_id": key.removeprefix("tasks:")}
        assert "new operation_id" in info.value.message
    assert holder.gate is not None
    holder.gate.set()
    assert await task == (b"op-1", False)


async def test_definitive_error_is_stored_and_replayed_when_produce_refuses(harness: Harness) -> None:
    store = harness.make()
    key, produce = op_id(), Producer()
    refusal = errors.InvalidArgument(
        "bad task", violations=[errors.FieldViolation("tasks[0].pool_id", "unknown pool", "NOT_FOUND")]
    )
    produce.fail = refusal
    for _ in range(2):
        with pytest.raises(errors.InvalidArgument) as info:
            await harness.replica(store).run(key, "fp", produce, call=call())
        assert info.value.to_dict() == refusal.to_dict()
    assert produce.runs == 1


@pytest.mark.parametrize(
    "failure", [errors.Unavailable("toloka down"), RuntimeError("bug")], ids=["unavailable", "bug"]
)
async def test_transient_failure_releases_claim_when_produce_fails(
    harness: Harness, failure: Exception
) -> None:
    store = harness.make()
    key, produce = op_id(), Producer()
    produce.fail = failure
    with pytest.raises(type(failure)):
        await store.run(key, "fp", produce, call=call())
    produce.fail = None
    assert await harness.replica(store).run(key, "fp", produce, call=call()) == (b"op-1", False)
    assert produce.runs == 2


async def test_waiter_takes_over_at_once_when_holder_fails_transiently(harness: Harness) -> None:
    store = harness.make(lease_s=30.0)
    key, holder = op_id(), Producer(gate=asyncio.Event())
    holder.fail = errors.Unavailable("toloka down")
    first = asyncio.create_task(store.run(key, "fp", holder, call=call()))
    await until(lambda: holder.runs == 1)
    waiter_store = harness.replica(store)
    second = Producer(b"second")
    waiter = asyncio.create_task(waiter_store.run(key, "fp", second, call=call()))
    await until(lambda: waiter_store.counters.waits == 1)
    started = time.monotonic()
    assert holder.gate is not None
    holder.gate.set()
    with pytest.raises(errors.Unavailable):
        await first
    assert await waiter == (b"second", False)
    assert time.monotonic() - started < 2.0  # woken by the release, not by the 30 s lease
    assert waiter_store.counters.takeovers == 1


async def test_holder_finishes_and_waiter_replays_when_the_first_caller_is_cancelled(
    harness: Harness,
) -> None:
    store = harness.make(lease_s=30.0)
    key, holder = op_id(), Producer(gate=asyncio.Event())
    first = asyncio.create_task(store.run(key, "fp", holder, call=call()))
    await until(lambda: holder.runs == 1)
    waiter_store = harness.replica(store)
    second = Producer(b"second")
    waiter = asyncio.create_task(waiter_store.run(key, "fp", second, call=call()))
    await until(lambda: waiter_store.counters.waits == 1)
    first.cancel()  # e.g. a mesh's per-try timeout: the create itself must not be cut short
    with pytest.raises(asyncio.CancelledError):
        await first
    assert store.counters.detached == 1
    assert holder.gate is not None
    holder.gate.set()
    assert await waiter == (b"op-1", True)
    assert (holder.runs, second.runs) == (1, 0)


async def test_waiter_takes_over_when_holder_dies_and_its_lease_lapses(harness: Harness) -> None:
    dead = harness.make(lease_s=0.4, dead=True)  # never renews: a process that died
    key, hung = op_id(), Producer(b"never", gate=asyncio.Event())
    holder = asyncio.create_task(dead.run(key, "fp", hung, call=call(None)))
    await until(lambda: hung.runs == 1)
    waiter_store = harness.replica(dead, lease_s=0.4)
    second = Producer(b"second")
    waiter = asyncio.create_task(waiter_store.run(key, "fp", second, call=call()))
    await until(lambda: waiter_store.counters.waits == 1)
    await harness.elapse(0.5)
    assert await waiter == (b"second", False)
    assert second.runs == 1
    assert waiter_store.counters.takeovers == 1
    holder.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holder
    await dead.close()  # stops the old hold: its late release must not drop the new outcome
    assert await waiter_store.run(key, "fp", second, call=call()) == (b"second", True)


async def test_holder_keeps_claim_when_produce_outlasts_lease(harness: Harness) -> None:
    store = harness.make(lease_s=0.3)
    key, slow = op_id(), Producer(b"slow", gate=asyncio.Event())
    holder = asyncio.create_task(store.run(key, "fp", slow, call=call()))
    await until(lambda: slow.runs == 1)
    await asyncio.sleep(0.6)  # two leases of real time: renewals keep the claim
    other = harness.replica(store)
    waiter = asyncio.create_task(other.run(key, "fp", Producer(b"dup"), call=call()))
    await until(lambda: other.counters.waits >= 1)
    assert slow.gate is not None
    slow.gate.set()
    assert await holder == (b"slow", False)
    assert await waiter == (b"slow", True)


async def test_outcome_is_forgotten_when_retention_passes(harness: Harness) -> None:
    store = harness.make(retention_s=0.3)
    key, produce = op_id(), Producer()
    await store.run(key, "fp", produce, call=call())
    await harness.elapse(0.4)
    assert await store.run(key, "fp-other", produce, call=call()) == (b"op-1", False)
    assert produce.runs == 2


async def test_waiter_gets_deadline_exceeded_when_holder_outlasts_its_deadline(harness: Harness) -> None:
    store = harness.make()
    key, hung = op_id(), Producer(gate=asyncio.Event())
    holder = asyncio.create_task(store.run(key, "fp", hung, call=call()))
    await until(lambda: hung.runs == 1)
    started = time.monotonic()
    with pytest.raises(errors.DeadlineExceeded) as info:
        await harness.replica(store).run(key, "fp", Producer(), call=call(0.2))
    assert 0.15 < time.monotonic() - started < 1.5
    assert not type(info.value).definitive
    assert info.value.retry_after is not None and 0 < info.value.retry_after <= store_lease(harness)
    assert hung.gate is not None
    hung.gate.set()
    assert await holder == (b"op-1", False)


async def test_outcome_is_not_stored_when_larger_than_the_bound(harness: Harness) -> None:
    store = harness.make(max_stored_bytes=10)
    key, produce = op_id(), Producer(b"x" * 11)
    for _ in range(2):
        assert await store.run(key, "fp", produce, call=call()) == (b"x" * 11, False)
    assert produce.runs == 2
    assert store.counters.oversize == 2


def store_lease(harness: Harness) -> float:
    return harness.settings().lease_s


async def test_sent_claim_is_stored_as_unknown_not_resent_when_its_holder_dies(harness: Harness) -> None:
    dead = harness.make(lease_s=0.4, dead=True)  # never renews: a process that died
    key, hung = op_id(), Producer(b"never", gate=asyncio.Event(), sends=True)
    holder = asyncio.create_task(dead.run(key, "fp", hung, call=call(None)))
    await until(lambda: hung.sent == 1)
    waiter_store = harness.replica(dead, lease_s=0.4)
    second = Producer(b"second", sends=True)
    waiter = asyncio.create_task(waiter_store.run(key, "fp", second, call=call()))
    await until(lambda: waiter_store.counters.waits == 1)
    await harness.elapse(0.5)
    with pytest.raises(errors.OutcomeUnknown) as info:
        await waiter
    assert info.value.reason == "TOLOKA_OUTCOME_UNKNOWN"
    assert info.value.metadata["operation_id"] == key
    assert second.runs == 0  # never re-sent blind
    with pytest.raises(errors.OutcomeUnknown):  # and replayed to every later duplicate
        await harness.replica(dead).run(key, "fp", second, call=call())
    assert second.runs == 0
    holder.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holder


async def test_unknown_is_stored_when_the_holder_fails_unexpectedly_after_sending(harness: Harness) -> None:
    store = harness.make()
    key, produce = op_id(), Producer(sends=True)
    produce.fail = RuntimeError("bug after the request left")
    with pytest.raises(RuntimeError):
        await store.run(key, "fp", produce, call=call())
    produce.fail = None
    with pytest.raises(errors.OutcomeUnknown):
        await harness.replica(store).run(key, "fp", produce, call=call())
    assert produce.runs == 1 and store.counters.unknown == 1


async def test_unknown_is_stored_when_the_holder_is_stopped_after_sending(harness: Harness) -> None:
    store = harness.make(lease_s=0.5)  # close() gives a detached holder one lease to finish
    key, hung = op_id(), Producer(gate=asyncio.Event(), sends=True)
    first = asyncio.create_task(store.run(key, "fp", hung, call=call()))
    await until(lambda: hung.sent == 1)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await store.close()  # shutdown stops the detached hold: its outcome is unknown from then on
    with pytest.raises(errors.OutcomeUnknown):
        await harness.replica(store).run(key, "fp", Producer(sends=True), call=call())
    assert hung.runs == 1


async def test_claim_is_released_when_toloka_did_not_act_after_sending(harness: Harness) -> None:
    store = harness.make()
    key, produce = op_id(), Producer(sends=True)
    produce.fail = errors.RateLimited("429 before Toloka acted")
    with pytest.raises(errors.RateLimited):
        await store.run(key, "fp", produce, call=call())
    produce.fail = None
    assert await harness.replica(store).run(key, "fp", produce, call=call()) == (b"op-1", False)
    assert produce.runs == 2


async def test_sent_claim_keeps_its_lease_when_produce_outlasts_it(harness: Harness) -> None:
    store = harness.make(lease_s=0.3)
    key, slow = op_id(), Producer(b"slow", gate=asyncio.Event(), sends=True)
    holder = asyncio.create_task(store.run(key, "fp", slow, call=call()))
    await until(lambda: slow.sent == 1)
    await asyncio.sleep(0.6)  # two leases of real time: renewals keep the sent claim alive
    other = harness.replica(store)
    waiter = asyncio.create_task(other.run(key, "fp", Producer(b"dup", sends=True), call=call()))
    await until(lambda: other.counters.waits >= 1)
    assert slow.gate is not None
    slow.gate.set()
    assert await holder == (b"slow", False)
    assert await waiter == (b"slow", True)


async def test_sent_outcome_too_large_to_keep_is_replayed_as_unknown_not_resent(harness: Harness) -> None:
    store = harness.make(max_stored_bytes=10)
    key, produce = op_id(), Producer(b"x" * 11, sends=True)
    assert await store.run(key, "fp", produce, call=call()) == (b"x" * 11, False)
    with pytest.raises(errors.OutcomeUnknown) as info:
        await store.run(key, "fp", produce, call=call())
    assert info.value.reason == "TOLOKA_OUTCOME_UNKNOWN" and produce.runs == 1


async def test_unknown_outcome_outlives_the_retention_when_no_unknown_retention_is_set(
    harness: Harness,
) -> None:
    store = harness.make(retention_s=0.3)
    key, produce = op_id(), Producer(sends=True)
    produce.fail = RuntimeError("bug after the request left")
    with pytest.raises(RuntimeError):
        await store.run(key, "fp", produce, call=call())
    await harness.elapse(0.5)  # past the retention of ordinary outcomes
    produce.fail = None
    with pytest.raises(errors.OutcomeUnknown):  # a person settles it, not the time
        await harness.replica(store, retention_s=0.3).run(key, "fp", produce, call=call())
    assert produce.runs == 1


async def test_unknown_outcome_expires_when_an_unknown_retention_is_set(harness: Harness) -> None:
    store = harness.make(unknown_retention_s=0.3)
    key, produce = op_id(), Producer(sends=True)
    produce.fail = RuntimeError("bug after the request left")
    with pytest.raises(RuntimeError):
        await store.run(key, "fp", produce, call=call())
    await harness.elapse(0.5)
    produce.fail = None
    assert await harness.replica(store, unknown_retention_s=0.3).run(key, "fp", produce, call=call()) == (
        b"op-1",
        False,
    )


async def test_caller_gets_deadline_exceeded_and_its_retry_the_outcome_when_produce_outlasts_it(
    harness: Harness,
) -> None:
    store = harness.make()
    key, slow = op_id(), Producer(b"late", gate=asyncio.Event(), sends=True)
    started = time.monotonic()
    with pytest.raises(errors.DeadlineExceeded) as info:
        await store.run(key, "fp", slow, call=call(0.2))
    assert time.monotonic() - started < 1.0
    assert info.value.retry_after  # when to come back for the outcome
    assert store.counters.detached == 1
    retry = asyncio.create_task(harness.replica(store).run(key, "fp", slow, call=call()))
    assert slow.gate is not None
    slow.gate.set()  # the create finishes after its first caller left
    assert await retry == (b"late", True)
    assert slow.runs == 1


Produce = Callable[[HeldClaim], Awaitable[bytes]]
