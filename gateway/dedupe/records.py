"""What a dedupe backend stores per operation_id, and the answers a claim attempt can get.

One record per key, the same bytes in every backend:

    kind (1 byte) | fingerprint digest (16 bytes) | body

    kind b"C"  an in-flight claim; body = the holder's random token (8 bytes); lives for the lease
    kind b"S"  an in-flight claim whose request may have reached Toloka and must not be repeated
               blind (a synchronous create); body = token (8 bytes) + the lease's end in ms (ASCII).
               It lives for the unknown-outcome retention: once its lease ends with no outcome
               stored (the holder died), the next claim attempt turns it into a b"U" record
    kind b"U"  an outcome Toloka may or may not have produced; no body (the answer, OutcomeUnknown,
               is built from the key). It lives for the unknown-outcome retention (by default until
               someone deletes it): a person settles it, the time does not
    kind b"O"  a stored outcome; body = the bytes `produce` returned; lives for the retention
    kind b"E"  a stored definitive error; body = orjson of `GatewayError.to_dict()`
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

import orjson

from gateway import errors

KIND_CLAIM: Final = b"C"
KIND_OUTCOME: Final = b"O"
KIND_ERROR: Final = b"E"
KIND_SENT: Final = b"S"
KIND_UNKNOWN: Final = b"U"
FP_BYTES: Final = 16
HEADER_BYTES: Final = 1 + FP_BYTES


def fingerprint_digest(fingerprint: str) -> bytes:
    """A fixed 16-byte digest, so a long canonical fingerprint costs no memory per key."""
    return hashlib.blake2b(fingerprint.encode(), digest_size=FP_BYTES).digest()


def claim_record(fp: bytes, token: bytes) -> bytes:
    """The record of an in-flight claim held by `token`."""
    return KIND_CLAIM + fp + token


class Claimed:
    """The caller now holds the claim and must run produce."""


class Mismatch:
    """The key is held or stored under a different fingerprint."""


CLAIMED: Final = Claimed()
MISMATCH: Final = Mismatch()


@dataclass(frozen=True, slots=True)
class Busy:
    """Another request holds the claim for at most `lease_left_s` more seconds unless renewed."""

    lease_left_s: float


@dataclass(frozen=True, slots=True)
class Done:
    """A stored outcome (`KIND_OUTCOME`), definitive error (`KIND_ERROR`) or unknown outcome (`KIND_UNKNOWN`)."""

    kind: bytes
    body: bytes

    @classmethod
    def parse(cls, record: bytes) -> Done:
        """Split a stored record into kind and body."""
        return cls(record[:1], record[HEADER_BYTES:])

    def replay(self, key: str) -> tuple[bytes, bool]:
        """The stored outcome with replayed=True, or raise the stored error."""
        if self.kind == KIND_ERROR:
            raise errors.GatewayError.from_dict(orjson.loads(self.body))
        if self.kind == KIND_UNKNOWN:
            raise unknown_outcome(key)
        return self.body, True


Reply = Claimed | Mismatch | Busy | Done


def operation_id_of(key: str) -> str:
    """The operation_id in a dedupe key: callers may namespace keys (`tasks:<id>`, `rework:<id>`)."""
    return key.rpartition(":")[2]


def reused_error(key: str) -> errors.AlreadyExists:
    """The ALREADY_EXISTS answer for an operation_id reused with a different request."""
    operation_id = operation_id_of(key)
    return errors.AlreadyExists(
        f"operation_id {operation_id} was already used with a different request; "
        "send a new operation_id for a new request",
        metadata={"operation_id": operation_id},
    )


def in_progress_error(key: str, lease_left_s: float | None = None) -> errors.DeadlineExceeded:
    """The answer to a duplicate whose deadline passed while the first request was still running.

    RetryInfo says when the holder's lease ends at the latest, so a client (or a mesh) retrying
    then finds the outcome, or takes the claim over if the holder died.
    """
    operation_id = operation_id_of(key)
    return errors.DeadlineExceeded(
        f"operation_id {operation_id} is still being processed by another request; "
        "retry with the same operation_id",
        metadata={"operation_id": operation_id},
        retry_after=None if lease_left_s is None else max(0.05, round(lease_left_s, 3)),
    )


def unknown_outcome(key: str) -> errors.OutcomeUnknown:
    """The answer for a request Toloka may have performed, but whose outcome is not known."""
    operation_id = operation_id_of(key)
    return errors.OutcomeUnknown(
        f"Toloka may or may not have performed operation_id {operation_id}; it is synchronous, "
        "so it is never re-sent blind. Check the pool for the tasks; if they are not there, send the "
        "request again with a new operation_id (or use async_mode, which Toloka performs once per id)",
        metadata={"operation_id": operation_id, "ambiguous": "true"},
    )
