"""The ONLY map from domain errors to the REST front's answers: Toloka-shaped error bodies.

Every refusal is `{"request_id", "code", "message", "payload"}` with the status Toloka itself would
use, so toloka-kit raises the exception it raises for Toloka's own answer. `request_id` is the
gateway's request id (also in the call log line), never a class name or a stack trace.

A 429 carries no `Retry-After` header and no `payload.interval`: toloka-kit 1.2.3 crashes on either
(it waits on a tenacity state object); with neither it waits and retries. How long to wait is in
`payload.retry_after_seconds` for other clients.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from gateway import errors

# (HTTP status, Toloka code) per domain error; the first matching class wins (subclasses first).
_STATUS: tuple[tuple[type[errors.GatewayError], int, str], ...] = (
    (errors.OutcomeUnknown, 409, "OPERATION_OUTCOME_UNKNOWN"),
    (errors.InvalidArgument, 400, "VALIDATION_ERROR"),
    (errors.NotFound, 404, "DOES_NOT_EXIST"),
    (errors.AlreadyExists, 409, "OPERATION_ALREADY_EXISTS"),
    (errors.FailedPrecondition, 409, "CONFLICT_STATE"),
    (errors.Unauthenticated, 401, "AUTHENTICATION_ERROR"),
    (errors.PermissionDenied, 403, "ACCESS_DENIED"),
    (errors.RateLimited, 429, "TOO_MANY_REQUESTS"),
    (errors.Unavailable, 503, "REMOTE_SERVICE_UNAVAILABLE"),
    (errors.DeadlineExceeded, 504, "DEADLINE_EXCEEDED"),
)
_HTTP_CODES = {404: "DOES_NOT_EXIST", 405: "METHOD_NOT_ALLOWED", 413: "ENTITY_TOO_LARGE"}


class RelayedRefusal(errors.GatewayError):
    """Toloka's refusal of a request the gateway ran itself, answered as Toloka sent it (not stored)."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"Toloka answered HTTP {status}", reason="TOLOKA_REFUSED")
        self.status = status
        self.body = body


def toloka_error(
    status: int, code: str, message: str, *, request_id: str, payload: Any = None
) -> web.Response:
    """One Toloka-shaped error answer."""
    body: dict[str, Any] = {"request_id": request_id, "code": code, "message": message}
    if payload:
        body["payload"] = payload
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def status_of(error: errors.GatewayError) -> tuple[int, str]:
    """The HTTP status and Toloka code a domain error is answered with."""
    for cls, status, code in _STATUS:
        if isinstance(error, cls):
            # Toloka's own code, when Toloka refused (e.g. INAPPROPRIATE_STATUS on a 409).
            if error.toloka_code and status == 409 and cls is errors.FailedPrecondition:
                return status, error.toloka_code
            return status, code
    return 500, "INTERNAL_ERROR"


def _payload(error: errors.GatewayError) -> dict[str, Any]:
    payload: dict[str, Any] = {"reason": error.reason}
    for v in error.violations:
        payload[v.field] = {"code": v.reason or "INVALID_VALUE", "message": v.description}
    if isinstance(error, errors.RateLimited):
        payload["quota"] = [{"subject": q.subject, "description": q.description} for q in error.quota]
        if "account" in error.metadata:  # the Toloka account whose limits refused
            payload["account"] = error.metadata["account"]
    if error.retry_after is not None:
        payload["retry_after_seconds"] = round(error.retry_after, 3)
    if error.toloka_request_id:
        payload["toloka_request_id"] = error.toloka_request_id
    return payload


def error_response(error: errors.GatewayError, *, request_id: str) -> web.Response:
    """A domain error as Toloka would answer it (Toloka's own refusal as Toloka sent it)."""
    if isinstance(error, RelayedRefusal):
        return web.Response(status=error.status, body=error.body, content_type="application/json")
    status, code = status_of(error)
    return toloka_error(status, code, error.message, request_id=request_id, payload=_payload(error))


def http_error_response(exc: web.HTTPException, *, request_id: str) -> web.Response:
    """aiohttp's own refusals (unknown route, method, a body over the size limit) in Toloka's shape."""
    status = exc.status
    code = _HTTP_CODES.get(status, "VALIDATION_ERROR" if status < 500 else "INTERNAL_ERROR")
    message = "the request body is larger than this gateway accepts" if status == 413 else exc.reason
    return toloka_error(status, code, message, request_id=request_id)
