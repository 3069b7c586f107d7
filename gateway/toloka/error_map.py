"""The ONLY map from Toloka's HTTP answers (and their absence) to domain errors.

Toloka's error body is `{"request_id", "code", "message", "payload"?}`; the same code can come
with several HTTP statuses, so the code decides first and the status second. What the client
concludes from a failure is built here too: a deadline that passed, an outcome that is unknown
(a request that must not be re-sent got no definite answer), an operation already performed.
"""

from __future__ import annotations

from typing import Any

from gateway import errors

OPERATION_ALREADY_EXISTS = "OPERATION_ALREADY_EXISTS"
_CREDENTIAL_CODES = frozenset({"AUTHENTICATION_ERROR", "OAUTH_AUTHENTICATION_ERROR"})
_QUOTA_CODES = frozenset({"TOO_MANY_REQUESTS", "TASKS_CREATION_DOES_NOT_FIT_QUOTA"})


def _violations(payload: Any, prefix: str) -> list[errors.FieldViolation]:
    """Flatten Toloka's validation payload (path -> {code, message}, possibly per index)."""
    out: list[errors.FieldViolation] = []
    if not isinstance(payload, dict):
        return out
    for key, value in payload.items():
        if isinstance(value, dict) and "code" in value and not isinstance(value.get("code"), dict):
            out.append(
                errors.FieldViolation(f"{prefix}{key}", str(value.get("message", "")), str(value["code"]))
            )
        elif isinstance(value, dict):
            inner = f"{prefix}[{key}]." if str(key).isdigit() else f"{prefix}{key}."
            out.extend(_violations(value, inner))
    return out


def _rate_limited(
    data: dict[str, Any], message: str, retry_after: float | None, kw: dict[str, Any]
) -> errors.RateLimited:
    """Toloka's quota refusal, naming the quota interval when Toloka gives one."""
    payload = data.get("payload")
    interval = payload.get("interval") if isinstance(payload, dict) else None
    if interval:
        kw["metadata"]["interval"] = str(interval)
    return errors.RateLimited(
        f"Toloka's quota is exhausted: {message}",
        reason="TOLOKA_RATE_LIMITED",
        retry_after=retry_after,
        quota=[errors.QuotaViolation(subject=f"toloka:{interval or kw['toloka_code']}", description=message)],
        **kw,
    )


def is_credentials_rejected(status: int, body: Any) -> bool:
    """Toloka refused the gateway's own key (never relayed as the caller's problem)."""
    code = body.get("code") if isinstance(body, dict) else None
    return status == 401 or code in _CREDENTIAL_CODES


def error_from_response(
    status: int, body: Any, *, retry_after: float | None, field_prefix: str = ""
) -> errors.GatewayError:
    """Turn a non-2xx Toloka answer into the domain error a caller can act on."""
    data = body if isinstance(body, dict) else {}
    code = str(data.get("code") or f"HTTP_{status}")
    message = str(data.get("message") or f"Toloka answered HTTP {status}")
    kw: dict[str, Any] = {
        "toloka_code": code,
        "toloka_request_id": str(data.get("request_id") or ""),
        "metadata": {"http_status": str(status)},
    }
    if is_credentials_rejected(status, data):
        return errors.Internal(
            "Toloka rejected the gateway's own credentials for this account; the operator must fix its key "
            "(TOLOKA_API_KEY, or the account's api_key_env / api_key_file)",
            reason="TOLOKA_CREDENTIALS_REJECTED",
            **kw,
        )
    if status == 429 or code in _QUOTA_CODES:
        return _rate_limited(data, message, retry_after, kw)
    if status >= 500 or status == 408:
        return errors.Unavailable(
            f"Toloka is unavailable: {message}", retry_after=retry_after, reason="TOLOKA_UNAVAILABLE", **kw
        )
    if status == 404:
        return errors.NotFound(message, reason="TOLOKA_NOT_FOUND", **kw)
    if status == 403:
        return errors.PermissionDenied(
            f"Toloka denied the gateway's account access: {message}", reason="TOLOKA_ACCESS_DENIED", **kw
        )
    if status == 409:
        return errors.FailedPrecondition(message, reason=code, **kw)
    if status in (400, 413):
        return errors.InvalidArgument(
            f"Toloka refused the request: {message}",
            reason=code,
            violations=_violations(data.get("payload"), field_prefix),
            **kw,
        )
    return errors.Internal(
        f"unexpected answer from Toloka: HTTP {status} {code}", reason="TOLOKA_UNEXPECTED", **kw
    )


def network_error(*, sent: bool) -> errors.Unavailable:
    """A transport failure; `sent` says the request may have reached Toloka.

    The message names no exception class: that would name the HTTP library, not what happened.
    """
    what = (
        "no answer from Toloka (the connection failed or timed out after sending)"
        if sent
        else "cannot reach Toloka"
    )
    return errors.Unavailable(
        what,
        reason="TOLOKA_UNREACHABLE",
        metadata={"ambiguous": str(sent).lower()},
    )


def deadline_exceeded(
    failure: errors.GatewayError | None = None, *, attempts: int | None = None
) -> errors.DeadlineExceeded:
    """The caller's deadline passed before Toloka answered (after `attempts`, the last one `failure`)."""
    metadata = {} if attempts is None else {"attempts": str(attempts)}
    if failure is not None:
        metadata.update(failure.metadata)
    return errors.DeadlineExceeded("the call's deadline passed before Toloka answered", metadata=metadata)


def outcome_unknown(failure: errors.GatewayError) -> errors.OutcomeUnknown:
    """A synchronous create that Toloka may or may not have performed (stored and replayed)."""
    return errors.OutcomeUnknown(
        "Toloka may or may not have created the tasks (no definite answer to a synchronous create); "
        "it is never re-sent blind: check the pool, and if the tasks are not there send the request "
        "again with a new operation_id (or use async_mode, which Toloka performs once per id)",
        reason="TOLOKA_OUTCOME_UNKNOWN",
        toloka_code=failure.toloka_code,
        toloka_request_id=failure.toloka_request_id,
        metadata={**failure.metadata, "ambiguous": "true"},
    )


def is_operation_already_exists(error: errors.GatewayError) -> bool:
    """Toloka's 409 for an operation_id it has already used (not an unknown outcome)."""
    return (
        isinstance(error, errors.FailedPrecondition)
        and not isinstance(error, errors.OutcomeUnknown)
        and error.toloka_code == OPERATION_ALREADY_EXISTS
    )


def already_performed(operation_id: str, conflict: errors.GatewayError) -> errors.FailedPrecondition:
    """Toloka performed `operation_id` earlier and its result cannot be read back (synchronous mode)."""
    return errors.FailedPrecondition(
        f"Toloka already performed operation {operation_id}; its result cannot be read back "
        "in synchronous mode",
        reason="OPERATION_ALREADY_PERFORMED",
        toloka_code=conflict.toloka_code,
        toloka_request_id=conflict.toloka_request_id,
    )
