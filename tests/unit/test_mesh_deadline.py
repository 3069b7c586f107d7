"""The call deadline from a mesh's per-try timeout counts from when the request had arrived."""

from __future__ import annotations

import time
from typing import Any

from gateway.rpc.call_context import DEADLINE_MARGIN_S, call_deadline


class Metadata:
    """The two things `call_deadline` reads from a gRPC servicer context."""

    def __init__(self, metadata: tuple[tuple[str, str], ...], remaining: float | None) -> None:
        self._metadata = metadata
        self._remaining = remaining

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def time_remaining(self) -> float | None:
        return self._remaining


def deadline(
    metadata: tuple[tuple[str, str], ...], remaining: float | None, received_at: float | None
) -> float:
    context: Any = Metadata(metadata, remaining)
    value = call_deadline(context, received_at)
    assert value is not None
    return value


def test_time_spent_decoding_is_taken_off_the_per_try_timeout_when_the_request_arrived_earlier() -> None:
    mesh = (("x-envoy-expected-rq-timeout-ms", "2000"),)
    now = time.monotonic()
    fresh = deadline(mesh, None, now)
    late = deadline(mesh, None, now - 0.5)  # half a second went on receiving and decoding it
    assert abs((fresh - late) - 0.5) < 0.05
    assert late - time.monotonic() < 1.5 - DEADLINE_MARGIN_S + 0.05


def test_grpc_deadline_wins_when_it_is_earlier_than_the_per_try_timeout() -> None:
    mesh = (("x-envoy-expected-rq-timeout-ms", "5000"),)
    assert deadline(mesh, 1.0, time.monotonic()) - time.monotonic() < 1.0


def test_malformed_per_try_timeout_is_ignored_when_present() -> None:
    for value in ("-5", "abc", "0", " "):
        assert (
            deadline((("x-envoy-expected-rq-timeout-ms", value),), 3.0, time.monotonic())
            > time.monotonic() + 2
        )
