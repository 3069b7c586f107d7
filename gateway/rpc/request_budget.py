"""A process-wide budget for the memory that requests in flight hold.

A request is charged before it is decoded, from its raw size alone (the only thing known then):
`raw bytes x MEMORY_FACTOR`. The charge is held until the call ends. Over the budget the call is
refused with RESOURCE_EXHAUSTED: with RetryInfo when it would fit once other calls finish, without
it when it is larger than the whole budget (waiting can never help).

Every reservation is released exactly once: by the call's end, or, should it never reach a handler
(the call is cancelled between decoding and the handler), when the reservation is garbage collected.
"""

from __future__ import annotations

import math
import threading
import weakref

from gateway import errors

REASON = "REQUEST_MEMORY_BUDGET"
RETRY_AFTER_S = 1.0  # nobody knows when memory frees up; calls in flight usually end within seconds

# Peak resident memory a request adds while it is in flight, as a multiple of its raw (wire) size.
# Measured with a gateway process in front of an emulator in another process, one ~48 MiB CreateTasks
# at a time and three at once (VmHWM minus VmRSS before): text-heavy tasks (large
# message_on_unknown_solution, or 10,000 tasks of ~5 KB) 4.6-5.7x; Struct-heavy tasks (10,000 tasks
# with ~500 B of output_values) 6.4x. The raw bytes, the decoded message, the JSON body and the HTTP
# buffers are all alive at once. Pathological Structs (lists of booleans or tiny numbers) reach 13-19x
# because every Value decodes to its own object; they are refused by validation, and the message size
# limit bounds them. 7 covers the ordinary shapes with a margin and keeps one 64 MiB message (the
# default max_message_bytes) within the default 512 MiB budget.
MEMORY_FACTOR = 7.0


class Reservation:
    """Bytes held against a budget until released (once, however often release() is called)."""

    __slots__ = ("__weakref__", "_finalizer", "nbytes")

    def __init__(self, budget: RequestMemoryBudget, nbytes: int) -> None:
        self.nbytes = nbytes
        # The finalizer runs at most once: on release(), or when the reservation is dropped unreleased.
        self._finalizer = weakref.finalize(self, budget._give_back, nbytes)

    def release(self) -> None:
        """Give the bytes back to the budget."""
        self._finalizer()

    @property
    def released(self) -> bool:
        """True once the bytes are back in the budget."""
        return not self._finalizer.alive


class RequestMemoryBudget:
    """How much memory the requests in flight may hold together, and how much they hold now."""

    def __init__(self, *, capacity_bytes: int, factor: float = MEMORY_FACTOR) -> None:
        if capacity_bytes <= 0 or factor <= 0:
            raise ValueError("capacity_bytes and factor must be positive")
        self.capacity_bytes = capacity_bytes
        self.factor = factor
        self.reserved_bytes = 0
        self.in_flight = 0
        self.refused = 0
        self._lock = threading.Lock()  # finalizers may run wherever the last reference is dropped

    def charge(self, raw_size: int) -> int:
        """What a request of `raw_size` wire bytes is charged."""
        return math.ceil(max(raw_size, 1) * self.factor)

    def reserve(self, raw_size: int) -> Reservation:
        """Hold the charge for a request, or RateLimited when the budget has no room for it."""
        nbytes = self.charge(raw_size)
        with self._lock:
            if nbytes <= self.capacity_bytes - self.reserved_bytes:
                self.reserved_bytes += nbytes
                self.in_flight += 1
                return Reservation(self, nbytes)
            self.refused += 1
        raise self._refusal(nbytes)

    def _give_back(self, nbytes: int) -> None:
        with self._lock:
            self.reserved_bytes -= nbytes
            self.in_flight -= 1

    def _refusal(self, nbytes: int) -> errors.RateLimited:
        never_fits = nbytes > self.capacity_bytes
        detail = (
            "is larger than this server accepts at all: split it"
            if never_fits
            else "does not fit while other large requests are in flight: retry shortly"
        )
        return errors.RateLimited(
            f"the request {detail}",
            reason=REASON,
            metadata={"charged_bytes": str(nbytes), "budget_bytes": str(self.capacity_bytes)},
            quota=[errors.QuotaViolation("request_memory", "memory held by requests in flight")],
            retry_after=None if never_fits else RETRY_AFTER_S,
        )
