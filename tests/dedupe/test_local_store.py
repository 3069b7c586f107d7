"""In-process specifics: memory follows the retention."""

from __future__ import annotations

from gateway.dedupe import LocalDeduplicator
from gateway.settings import DedupeSettings
from tests.dedupe.test_contract import Producer, call, op_id
from tests.support.clock import ManualClock


async def test_expired_outcomes_are_dropped_when_later_calls_arrive() -> None:
    clock = ManualClock()
    store = LocalDeduplicator(settings=DedupeSettings(retention_s=60.0), clock=clock)
    for _ in range(100):
        await store.run(op_id(), "fp", Producer(), call=call())
    assert len(store) == 100
    await clock.advance(61.0)
    await store.run(op_id(), "fp", Producer(), call=call())
    assert len(store) == 1
