"""In-process dedupe: one replica only (no Redis configured), expiry by the injected `Clock`."""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.dedupe.claiming import ClaimingDeduplicator, random_token
from gateway.dedupe.records import (
    CLAIMED,
    KIND_CLAIM,
    KIND_SENT,
    KIND_UNKNOWN,
    MISMATCH,
    Busy,
    Done,
    Reply,
)
from gateway.settings import DedupeSettings


@dataclass(slots=True)
class _Entry:
    kind: bytes
    fp: bytes
    body: bytes  # the holder's token for a claim, else the stored outcome
    expires_at: float
    seq: int
    lease_until: float = 0.0  # a sent claim's lease (the entry itself lives for the retention)


class LocalDeduplicator(ClaimingDeduplicator):
    """Claims and outcomes in a dict; leases and retention measured by `clock`.

    Expired entries are dropped lazily: each claim pops due entries off an expiry heap, so memory
    follows the retention without a sweeper task.
    """

    def __init__(
        self,
        *,
        settings: DedupeSettings,
        clock: Clock = SYSTEM_CLOCK,
        new_token: Callable[[], bytes] = random_token,
    ) -> None:
        super().__init__(settings=settings, clock=clock, new_token=new_token)
        self._entries: dict[str, _Entry] = {}
        self._expiry: list[tuple[float, int, str]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def _claim(self, key: str, fp: bytes, token: bytes, *, within_s: float | None = None) -> Reply:
        now = self._clock.now()
        self._expire(now)
        entry = self._live_entry(key, now)
        if entry is None:
            self._put(key, KIND_CLAIM, fp, token, now + self._settings.lease_s)
            return CLAIMED
        if entry.fp != fp:
            return MISMATCH
        if entry.kind == KIND_CLAIM:
            return Busy(entry.expires_at - now)
        if entry.kind == KIND_SENT:
            if entry.lease_until > now:
                return Busy(entry.lease_until - now)
            # Its holder is gone after its request may have reached Toloka: never re-send.
            self._put(key, KIND_UNKNOWN, fp, b"", self._unknown_until(now))
            self._hub.notify(key)
            return Done(KIND_UNKNOWN, b"")
        return Done(entry.kind, entry.body)

    async def _mark_sent(self, key: str, fp: bytes, token: bytes) -> bool:
        if not self._holds(key, fp, token):
            return False
        now = self._clock.now()
        self._put(key, KIND_SENT, fp, token, self._unknown_until(now))
        self._entries[key].lease_until = now + self._settings.lease_s
        return True

    def _unknown_until(self, now: float) -> float:
        retention = self._settings.unknown_retention_s
        return now + retention if retention > 0 else math.inf

    async def _store(self, key: str, fp: bytes, token: bytes, kind: bytes, body: bytes) -> None:
        now = self._clock.now()
        entry = self._live_entry(key, now)
        if entry is not None and (entry.kind not in (KIND_CLAIM, KIND_SENT) or entry.fp != fp):
            return
        until = self._unknown_until(now) if kind == KIND_UNKNOWN else now + self._settings.retention_s
        self._put(key, kind, fp, body, until)
        self._hub.notify(key)

    async def _release(self, key: str, fp: bytes, token: bytes) -> None:
        if self._holds(key, fp, token):
            del self._entries[key]
            self._hub.notify(key)

    async def _renew(self, key: str, fp: bytes, token: bytes) -> bool:
        if not self._holds(key, fp, token):
            return False
        entry = self._entries[key]
        if entry.kind == KIND_SENT:
            entry.lease_until = self._clock.now() + self._settings.lease_s
        else:
            entry.expires_at = self._clock.now() + self._settings.lease_s
        return True

    def _holds(self, key: str, fp: bytes, token: bytes) -> bool:
        entry = self._live_entry(key, self._clock.now())
        return (
            entry is not None
            and entry.kind in (KIND_CLAIM, KIND_SENT)
            and entry.fp == fp
            and entry.body == token
        )

    def _live_entry(self, key: str, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at <= now:
            del self._entries[key]
            return None
        return entry

    def _put(self, key: str, kind: bytes, fp: bytes, body: bytes, expires_at: float) -> None:
        self._seq += 1
        self._entries[key] = _Entry(kind, fp, body, expires_at, self._seq)
        heapq.heappush(self._expiry, (expires_at, self._seq, key))

    def _expire(self, now: float) -> None:
        heap = self._expiry
        while heap and heap[0][0] <= now:
            _, seq, key = heapq.heappop(heap)
            entry = self._entries.get(key)
            if entry is None or entry.seq != seq:
                continue  # replaced since; its successor has its own heap item
            if entry.expires_at <= now:
                del self._entries[key]
            else:  # renewed lease
                heapq.heappush(heap, (entry.expires_at, seq, key))
