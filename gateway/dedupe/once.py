"""`once`: a use case's reply, produced once per operation_id and replayed to every duplicate.

Both idempotent use cases (CreateTasks, SetReworkRules) answer with a message that carries its
`operation_id` and says whether it was `replayed`; this is the one place that turns such a use
case into a `Deduplicator.run` call and its stored bytes back into the message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from gateway.call import Call
from gateway.dedupe.store import Deduplicator, HeldClaim


class IdempotentReply(Protocol):
    """A reply message of an idempotent use case."""

    operation_id: str
    replayed: bool

    def SerializeToString(self) -> bytes:
        """The message's wire bytes."""
        ...


R = TypeVar("R", bound=IdempotentReply)


async def once(
    dedupe: Deduplicator,
    *,
    namespace: str,
    operation_id: str,
    fingerprint: str,
    produce: Callable[[HeldClaim], Awaitable[R]],
    parse: Callable[[bytes], R],
    call: Call,
) -> R:
    """Run `produce` once per `namespace:operation_id`; duplicates get its reply, `replayed` set.

    A `fingerprint` that differs from the first request's raises AlreadyExists (see
    `Deduplicator.run`). The call that produced the reply gets the message itself, not a parse of
    its bytes.
    """
    produced: list[R] = []

    async def run(claim: HeldClaim) -> bytes:
        reply = await produce(claim)
        reply.operation_id = operation_id
        produced.append(reply)
        return reply.SerializeToString()

    outcome, replayed = await dedupe.run(f"{namespace}:{operation_id}", fingerprint, run, call=call)
    if produced and not replayed:
        return produced[0]
    reply = parse(outcome)
    reply.replayed = replayed
    return reply
