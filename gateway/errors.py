"""Domain errors: what went wrong, in terms a caller can act on. No grpc, no HTTP here.

    GatewayError                      base; carries reason, Toloka code and request id
    ├── InvalidArgument               bad input; field violations       -> INVALID_ARGUMENT
    ├── NotFound                      unknown pool / operation          -> NOT_FOUND
    ├── AlreadyExists                 operation_id reused differently   -> ALREADY_EXISTS
    ├── FailedPrecondition            wrong state (open/archived pool)  -> FAILED_PRECONDITION
    │   └── OutcomeUnknown            a create Toloka may have performed; stored, never re-sent
    ├── Unauthenticated               caller has no identity            -> UNAUTHENTICATED
    ├── PermissionDenied              caller may not do this            -> PERMISSION_DENIED
    ├── RateLimited                   our or Toloka's quota             -> RESOURCE_EXHAUSTED
    ├── Unavailable                   Toloka / network down, retryable  -> UNAVAILABLE
    ├── DeadlineExceeded              caller's deadline passed          -> DEADLINE_EXCEEDED
    └── Internal                      Toloka refused our credentials, or a bug -> INTERNAL

The mapping to gRPC codes lives in `gateway.rpc.status` only. `definitive` says whether the
outcome may be stored by the dedupe store and replayed (a validation refusal is; a transient
failure is not).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: a dotted path into the request and what is wrong with it."""

    field: str
    description: str
    reason: str = ""


class GatewayError(Exception):
    """Base of every error the gateway reports to a caller."""

    default_reason: ClassVar[str] = "ERROR"
    definitive: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        toloka_code: str = "",
        toloka_request_id: str = "",
        metadata: dict[str, str] | None = None,
        violations: list[FieldViolation] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.toloka_code = toloka_code
        self.toloka_request_id = toloka_request_id
        self.metadata = dict(metadata or {})
        self.violations = list(violations or [])
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form, so a definitive error can be stored and replayed."""
        return {
            "kind": type(self).__name__,
            "message": self.message,
            "reason": self.reason,
            "toloka_code": self.toloka_code,
            "toloka_request_id": self.toloka_request_id,
            "metadata": self.metadata,
            "violations": [[v.field, v.description, v.reason] for v in self.violations],
            "retry_after": self.retry_after,
        }

    @staticmethod
    def from_dict(data: dict[str, Any]) -> GatewayError:
        """Rebuild an error stored with `to_dict`."""
        cls = _KINDS.get(str(data.get("kind")), Internal)
        return cls(
            str(data.get("message", "")),
            reason=data.get("reason") or None,
            toloka_code=str(data.get("toloka_code", "")),
            toloka_request_id=str(data.get("toloka_request_id", "")),
            metadata=dict(data.get("metadata") or {}),
            violations=[FieldViolation(*v) for v in data.get("violations") or []],
            retry_after=data.get("retry_after"),
        )


class InvalidArgument(GatewayError):
    """The request is malformed or Toloka refused its content."""

    default_reason = "INVALID_ARGUMENT"
    definitive = True


class NotFound(GatewayError):
    """The named pool or operation does not exist."""

    default_reason = "NOT_FOUND"
    definitive = True


class AlreadyExists(GatewayError):
    """An operation_id was reused with a different request."""

    default_reason = "OPERATION_ID_REUSED"
    definitive = True


class FailedPrecondition(GatewayError):
    """The target is in a state that does not allow the call.

    Not definitive: the state can change (a pool is closed, an update finishes), so a retry
    with the same operation_id runs again instead of replaying the refusal.
    """

    default_reason = "FAILED_PRECONDITION"


class OutcomeUnknown(FailedPrecondition):
    """Toloka may or may not have performed a request that must not be repeated blind.

    Definitive: it is stored under the operation_id and replayed to every duplicate, so no
    retry (the caller's, a mesh's, another replica's) can create the same tasks twice. Only a
    person can settle it: look at the pool, then send a new operation_id if nothing was created.
    """

    default_reason = "TOLOKA_OUTCOME_UNKNOWN"
    definitive = True


class Unauthenticated(GatewayError):
    """The caller could not be identified."""

    default_reason = "UNAUTHENTICATED"


class PermissionDenied(GatewayError):
    """The caller may not make this call."""

    default_reason = "PERMISSION_DENIED"


@dataclass(frozen=True)
class QuotaViolation:
    """Which limit refused a call (becomes a google.rpc.QuotaFailure violation)."""

    subject: str
    description: str


class RateLimited(GatewayError):
    """A quota (the gateway's or Toloka's) has no room before the caller's deadline."""

    default_reason = "RATE_LIMITED"

    def __init__(self, message: str, *, quota: list[QuotaViolation] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.quota = list(quota or [])


class Unavailable(GatewayError):
    """Toloka or the network failed in a way a later retry may fix."""

    default_reason = "TOLOKA_UNAVAILABLE"


def shared_state_unavailable(message: str) -> Unavailable:
    """The refusal of what needs the shared state (Redis) while it is unreachable; nothing was sent."""
    return Unavailable(message, reason="SHARED_STATE_UNAVAILABLE", retry_after=1.0)


class DeadlineExceeded(GatewayError):
    """The caller's deadline passed before the outcome was known."""

    default_reason = "DEADLINE_EXCEEDED"


class Internal(GatewayError):
    """Not the caller's fault and not transient: Toloka refused our credentials, or a bug."""

    default_reason = "INTERNAL"


_KINDS: dict[str, type[GatewayError]] = {
    c.__name__: c
    for c in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        OutcomeUnknown,
        Unauthenticated,
        PermissionDenied,
        RateLimited,
        Unavailable,
        DeadlineExceeded,
        Internal,
    )
}


@dataclass
class ViolationList:
    """Collects field violations and raises them together as one InvalidArgument."""

    items: list[FieldViolation] = field(default_factory=list)

    def add(self, field_path: str, description: str, reason: str = "") -> None:
        """Record one bad field."""
        self.items.append(FieldViolation(field_path, description, reason))

    def raise_if_any(self, message: str = "the request is invalid") -> None:
        """Raise InvalidArgument listing every violation, if there is one."""
        if self.items:
            first = self.items[0]
            more = f" (and {len(self.items) - 1} more)" if len(self.items) > 1 else ""
            raise InvalidArgument(
                f"{message}: {first.field}: {first.description}{more}", violations=self.items
            )
