"""Fault injection: make the next N matching requests fail, stall, or drop the connection."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from gateway.emulator.wire import ApiError

_DEFAULT_CODES = {
    400: "VALIDATION_ERROR",
    401: "AUTHENTICATION_ERROR",
    403: "ACCESS_DENIED",
    404: "DOES_NOT_EXIST",
    409: "CONFLICT_STATE",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_ERROR",
    503: "REMOTE_SERVICE_UNAVAILABLE",
}


@dataclass
class Fault:
    """One fault rule.

    Matches requests whose method equals `method` ("*" = any) and whose path matches the regex `path`
    (`re.search`). Applies to the next `times` matching requests (None = forever). Effects, applied in
    this order: wait `latency_s`; then either answer `status` (a Toloka error body; for 429 an optional
    `Retry-After` header and/or `payload.interval`), or drop the connection without a response — before
    doing the work (`drop_before_work`) or after it (`drop_after_work`, e.g. the operation exists).
    `latency_after_work_s` holds the answer back after the work is done (the request's effect is
    visible at once, its reply arrives late or, if the client is gone by then, never).
    A fault with only `latency_s` delays the request and then handles it normally.
    Note: aiohttp's client silently retries an idempotent request (GET, PUT, ...) once after a server
    disconnect, so a drop fault on such a request needs `times=2` for the client to see the disconnect.
    """

    method: str = "*"
    path: str = ".*"
    times: int | None = 1
    status: int | None = None
    code: str | None = None
    message: str | None = None
    retry_after: float | None = None
    interval: str | None = None
    latency_s: float = 0.0
    latency_after_work_s: float = 0.0
    drop_after_work: bool = False
    drop_before_work: bool = False
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.method = self.method.upper()
        self._regex = re.compile(self.path)
        if self.times is not None and self.times < 1:
            raise ValueError("times must be >= 1 or None")

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault applies to a request."""
        return (self.method in ("*", method)) and self._regex.search(path) is not None

    def error(self) -> ApiError:
        """The error this fault answers with (only when `status` is set)."""
        assert self.status is not None
        code = self.code or _DEFAULT_CODES.get(self.status, "INTERNAL_ERROR")
        payload: dict[str, Any] | None = None
        headers: dict[str, str] | None = None
        if self.interval is not None:
            payload = {"interval": self.interval}
        if self.retry_after is not None:
            value = self.retry_after
            headers = {"Retry-After": str(int(value)) if float(value).is_integer() else str(value)}
        return ApiError(
            self.status, code, self.message or f"Injected fault {self.status}", payload, headers=headers
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON view for the control API."""
        return {
            "method": self.method,
            "path": self.path,
            "times": self.times,
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "retry_after": self.retry_after,
            "interval": self.interval,
            "latency_s": self.latency_s,
            "latency_after_work_s": self.latency_after_work_s,
            "drop_after_work": self.drop_after_work,
            "drop_before_work": self.drop_before_work,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        """Build a fault from the control API's JSON (same keys as the dataclass)."""
        allowed = {k for k in cls.__dataclass_fields__ if not k.startswith("_")}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault keys: {sorted(unknown)}")
        return cls(**data)


class FaultSet:
    """An ordered set of faults; the first active matching fault wins and is consumed once."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        """Add a fault after the existing ones."""
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every fault."""
        self._faults.clear()

    def active(self) -> list[Fault]:
        """Faults with uses left."""
        return list(self._faults)

    def take(self, method: str, path: str) -> Fault | None:
        """The fault for this request, consuming one use of it."""
        if not self._faults:
            return None
        for fault in self._faults:
            if fault.matches(method, path):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                return fault
        return None
