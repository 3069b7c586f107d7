"""What a dedupe backend stores per operation_id, and the answers a claim attempt can get.

One record per key, the same bytes in every backend:

    kind (1 byte) | fingerprint digest (16 bytes) | body

    kind b"C"  an in-flight claim; body = the holder's random token (8 bytes); lives for the lease
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
    """A stored outcome (`KIND_OUTCOME`) or definitive error (`KIND_ERROR`)."""

    kind: bytes
    body: bytes

    @classmethod
    def parse(cls, record: bytes) -> Done:
        """Split a stored record into kind and body."""
        return cls(record[:1], record[HEADER_BYTES:])

    def replay(self) -> tuple[bytes, bool]:
        """The stored outcome with replayed=True, or raise the stored error."""
        if self.kind == KIND_ERROR:
            raise errors.GatewayError.from_dict(orjson.loads(self.body))
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


def in_progress_error(key: str) -> errors.DeadlineExceeded:
    """The answer to a duplicate whose deadline passed while the first request was still running."""
    operation_id = operation_id_of(key)
    return errors.DeadlineExceeded(
        f"operation_id {operation_id} is still being processed by another request; "
        "retry with the same operation_id",
        metadata={"operation_id": operation_id},
    )


class DedupeBackendUnavailable(errors.Unavailable):
    """The shared dedupe backend could not be reached; produce has NOT run for this call."""

    default_reason = "DEDUPE_BACKEND_UNAVAILABLE"
