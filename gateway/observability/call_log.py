"""JSON-lines logging: one line per call (gRPC and REST alike, `log_call`), secrets never written."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Protocol

import orjson

from gateway.observability.metrics import GatewayMetrics

CALLS = logging.getLogger("gateway.calls")


class CallFacts(Protocol):
    """What a call's log line names besides its method and status."""

    caller: str
    account: str
    request_id: str
    toloka_request_ids: list[str]
    shadow_refusals: list[str]
    trace_id: str


def log_call(
    method: str, status: str, started: float, call: CallFacts, metrics: GatewayMetrics | None
) -> None:
    """Count a finished call and its latency, and write its one JSON log line (at info).

    `method` names the RPC, or the REST method and path template (never a path with ids);
    `started` is its `time.perf_counter()` start.
    """
    elapsed = time.perf_counter() - started
    if metrics is not None:
        metrics.observe_call(method, status, elapsed)
    if CALLS.isEnabledFor(logging.INFO):
        extra = {
            "method": method,
            "caller": call.caller,
            "status": status,
            "duration_ms": round(elapsed * 1000, 2),
            "request_id": call.request_id,
            "toloka_request_ids": call.toloka_request_ids,
        }
        if call.account:  # set once the caller is authorised
            extra["account"] = call.account
        if call.trace_id:
            extra["trace_id"] = call.trace_id
        if call.shadow_refusals:
            extra["shadow_refusals"] = call.shadow_refusals
        CALLS.info("call", extra=extra)


_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                data[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            data["error"] = record.exc_info[0].__name__
        return orjson.dumps(data, default=str).decode()


def configure_logging(level: str) -> None:
    """Send every log record to stderr as JSON lines at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
