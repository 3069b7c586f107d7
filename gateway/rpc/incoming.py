"""Request decoding that never raises: the servicer gets every request, decoded or not.

gRPC calls the request deserializer before any handler code runs. Had it raised, gRPC would answer
UNKNOWN with the exception's class in the message, log a stack trace at error level and skip the
handler: no authentication, no metrics. Here decoding hands the handler an `Incoming` instead, which
holds the message or the refusal to give (undecodable, over the memory budget), and the request's
memory reservation; the handler authenticates the caller before it answers either way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from gateway import errors
from gateway.rpc.request_budget import RequestMemoryBudget, Reservation

Req = TypeVar("Req")
UNDECODABLE_REASON = "UNDECODABLE_REQUEST"


@dataclass(slots=True)
class Incoming(Generic[Req]):
    """One request as it left the deserializer: the message, or the refusal that replaces it."""

    message: Req | None
    refusal: errors.GatewayError | None = None
    reservation: Reservation | None = None
    # When the whole message had arrived (before decoding): a mesh's per-try timer was already running.
    received_at: float = field(default_factory=time.monotonic)


def _undecodable() -> errors.InvalidArgument:
    # No parser text: it names implementation classes and is no help to the caller.
    return errors.InvalidArgument(
        "the request could not be decoded as this method's request message"
        " (corrupt, truncated, or nested too deeply)",
        reason=UNDECODABLE_REASON,
    )


class RequestDecoder:
    """A request deserializer that charges the memory budget, then decodes, and never raises."""

    def __init__(self, message_type: Any, budget: RequestMemoryBudget | None) -> None:
        self._parse = message_type.FromString
        self._budget = budget

    def __call__(self, raw: bytes) -> Incoming[Any]:
        try:
            return self._decode(raw)
        except Exception:  # a raising deserializer is exactly what this class exists to prevent
            return Incoming(None, _undecodable())

    def _decode(self, raw: bytes) -> Incoming[Any]:
        received_at = time.monotonic()
        reservation = None
        if self._budget is not None:
            try:
                reservation = self._budget.reserve(len(raw))
            except errors.RateLimited as refusal:
                return Incoming(None, refusal)
        try:
            message = self._parse(raw)
        except Exception:
            if reservation is not None:
                reservation.release()
            return Incoming(None, _undecodable())
        return Incoming(message, None, reservation, received_at)
