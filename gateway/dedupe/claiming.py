"""The claim / wait / hold protocol shared by every dedupe backend.

A backend supplies five atomic primitives on one key (claim, mark sent, store, release, renew)
and wakes local waiters through `self._hub` when a key settles; this class turns them into
`Deduplicator.run`:

    claim ──CLAIMED──▶ hold (a task of its own: a caller that leaves does not stop it),
      │                renewing the lease every lease/3 while produce runs
      │                  ├─ bytes outcome / definitive GatewayError ─▶ store (retention) + wake
      │                  ├─ other GatewayError (Toloka did not act)  ─▶ release + wake, re-raise
      │                  └─ anything else (incl. cancellation)       ─▶ release + wake, or, once
      │                                                                 marked sent, OutcomeUnknown
      ├─Done──────▶ replay the stored outcome, or re-raise the stored error
      ├─Mismatch──▶ AlreadyExists (OPERATION_ID_REUSED)
      └─Busy──────▶ wait for a wake-up, the lease's end or a safety re-check, then claim again;
                    a claim won after waiting is a takeover. The caller's deadline bounds it all.

A claim marked sent (`HeldClaim.sending`, before a synchronous create leaves) is never taken
over: when its lease ends with nothing stored, the next claim attempt stores OutcomeUnknown.
"""

from __future__ import annotations

import asyncio
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable

import orjson

from gateway import errors
from gateway.call import Call
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.dedupe.records import (
    CLAIMED,
    KIND_ERROR,
    KIND_OUTCOME,
    KIND_UNKNOWN,
    MISMATCH,
    Busy,
    Done,
    Reply,
    fingerprint_digest,
    in_progress_error,
    reused_error,
)
from gateway.dedupe.store import DedupeCounters, Produce
from gateway.dedupe.wakeups import WakeupHub
from gateway.observability import tracing
from gateway.settings import DedupeSettings
from gateway.shared_state.client import RedisUnavailable

log = logging.getLogger(__name__)

# Without a live wake-up channel, waiters poll with this backoff.
_POLL_FIRST_S = 0.02
_POLL_MAX_S = 1.0
# A lease that ends now is re-checked just after it ends, not before.
_LEASE_MARGIN_S = 0.005
# When a caller's time runs out while its request is still being produced: retry after this.
DETACHED_RETRY_S = 1.0
# A stopped holder only settles its claim (one store or release): this long is plenty.
_STOPPED_HOLDER_S = 1.0


def random_token() -> bytes:
    """A claim token: 8 random bytes tell one holder from another."""
    return os.urandom(8)


class ClaimingDeduplicator(ABC):
    """`Deduplicator.run` over a backend's atomic claim / store / release / renew primitives.

    `clock` paces the lease renewer; a waiter's re-check and the caller's deadline run on the
    event loop's own timer (they bound real waits for another holder's real work).
    """

    def __init__(
        self,
        *,
        settings: DedupeSettings,
        clock: Clock = SYSTEM_CLOCK,
        new_token: Callable[[], bytes] = random_token,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._new_token = new_token
        self._hub = WakeupHub()
        self.counters = DedupeCounters()
        self._holders: set[asyncio.Task[bytes]] = set()

    @property
    def degraded(self) -> bool:
        """A backend that is reachable by construction is never degraded."""
        return False

    async def run(
        self,
        key: str,
        fingerprint: str,
        produce: Produce,
        *,
        call: Call,
    ) -> tuple[bytes, bool]:
        """See `Deduplicator.run`."""
        fp = fingerprint_digest(fingerprint)
        token = self._new_token()
        self._before_run()
        if tracing.enabled:
            with tracing.span("dedupe.claim", {"gateway.dedupe.key": key}) as span:
                reply, waited = await self._claimed(key, fp, token, call)
                _describe(span, reply, waited)
        else:
            reply, waited = await self._claimed(key, fp, token, call)
        return await self._settle(reply, key, fp, token, produce, waited=waited, call=call)

    async def _claimed(self, key: str, fp: bytes, token: bytes, call: Call) -> tuple[Reply, bool]:
        """The claim's answer once it is not Busy (after waiting for another holder, or not)."""
        # Registered before the first attempt, so a wake-up sent while it is in flight is kept.
        with self._hub.watch(key) as woken:
            waited = False
            poll = _POLL_FIRST_S
            while True:
                woken.clear()
                reply = await self._claim(key, fp, token, within_s=call.remaining())
                if not isinstance(reply, Busy):
                    break
                if not waited:
                    waited = True
                    self.counters.waits += 1
                if self._live():
                    timeout = min(self._settings.lease_s / 2, reply.lease_left_s + _LEASE_MARGIN_S)
                else:
                    timeout = min(poll, reply.lease_left_s + _LEASE_MARGIN_S)
                    poll = min(poll * 2, _POLL_MAX_S)
                await _wait(woken, timeout, call, key, reply.lease_left_s)
        return reply, waited

    async def _settle(
        self,
        reply: Reply,
        key: str,
        fp: bytes,
        token: bytes,
        produce: Produce,
        *,
        waited: bool,
        call: Call,
    ) -> tuple[bytes, bool]:
        if isinstance(reply, Done):
            self.counters.replays += 1
            return reply.replay(key)
        if reply is MISMATCH:
            self.counters.mismatches += 1
            raise reused_error(key)
        assert reply is CLAIMED
        self.counters.claims += 1
        if waited:
            self.counters.takeovers += 1
        # The hold is a task of its own: a caller that leaves mid-request (cancelled, a mesh's
        # per-try timeout, its deadline) must not cut a create short and leave its outcome unknown;
        # the hold finishes, stores the outcome, and the caller's retry replays it.
        holder = asyncio.create_task(self._hold(_Holding(self, key, fp, token), produce))
        self._holders.add(holder)
        holder.add_done_callback(self._holder_done)
        try:
            return await asyncio.wait_for(asyncio.shield(holder), timeout=call.remaining()), False
        except TimeoutError:
            if holder.done():
                return holder.result(), False  # it finished as the caller's time ran out
            self._detach(holder, call)
            raise in_progress_error(key, DETACHED_RETRY_S) from None
        except asyncio.CancelledError:
            if not holder.done():
                self._detach(holder, call)
            raise

    def _detach(self, holder: asyncio.Task[bytes], call: Call) -> None:
        """The caller left: the holder goes on, holding what the call held (its request's memory)."""
        self.counters.detached += 1
        release = call.hand_over_held()
        holder.add_done_callback(lambda _: release())

    def _holder_done(self, holder: asyncio.Task[bytes]) -> None:
        self._holders.discard(holder)
        if not holder.cancelled():
            holder.exception()  # retrieved: a detached holder's failure was already handled

    async def _hold(self, claim: _Holding, produce: Produce) -> bytes:
        """Run produce under a renewed lease, then settle the claim.

        A reply or definitive error is stored; a failure Toloka did not act on releases the claim;
        any other end of a claim marked sent stores the unknown outcome.
        """
        key, fp, token = claim.key, claim.fp, claim.token
        renewer = asyncio.create_task(self._keep_lease(key, fp, token))
        try:
            outcome = await produce(claim)
        except errors.GatewayError as err:
            renewer.cancel()
            if type(err).definitive:
                await self._finish(claim, KIND_ERROR, orjson.dumps(err.to_dict()))
            else:  # by HeldClaim's contract Toloka did not act, even after sending()
                await self._give_up(key, fp, token)
            raise
        except BaseException:
            renewer.cancel()
            if claim.sent:
                await self._store_unknown(claim)
            else:
                await self._give_up(key, fp, token)
            raise
        renewer.cancel()
        await self._finish(claim, KIND_OUTCOME, outcome)
        return outcome

    async def _finish(self, claim: _Holding, kind: bytes, body: bytes) -> None:
        key, fp, token = claim.key, claim.fp, claim.token
        if len(body) > self._settings.max_stored_bytes:
            self.counters.oversize += 1
            if claim.sent:  # a duplicate must not re-send it: keep what can be said
                await self._store_unknown(claim)
            else:  # duplicates re-send instead (Toloka's operation-id idempotency holds)
                await self._give_up(key, fp, token)
            return
        try:
            await self._store(key, fp, token, kind, body)
        except Exception:  # unreachable, or refused (OOM, read-only replica): never fail the call for it
            # The outcome is the caller's anyway; duplicates re-send once the lease lapses (a sent
            # claim's mark stays and answers them as unknown instead).
            self.counters.backend_errors += 1
            log.warning("dedupe: could not store the outcome of operation_id %s", key)

    async def _store_unknown(self, claim: _Holding) -> None:
        self.counters.unknown += 1
        try:
            await self._store(claim.key, claim.fp, claim.token, KIND_UNKNOWN, b"")
        except Exception:  # the sent mark stays, and becomes the same answer at its lease's end
            self.counters.backend_errors += 1
            log.warning("dedupe: could not store the unknown outcome of operation_id %s", claim.key)

    async def _give_up(self, key: str, fp: bytes, token: bytes) -> None:
        self.counters.releases += 1
        try:
            await self._release(key, fp, token)
        except Exception:  # the lease lapses by itself
            self.counters.backend_errors += 1
            log.warning("dedupe: could not release operation_id %s; its lease will lapse", key)

    async def _keep_lease(self, key: str, fp: bytes, token: bytes) -> None:
        while True:
            await self._clock.sleep(self._settings.lease_s / 3)
            try:
                held = await self._renew(key, fp, token)
            except Exception:  # try again at the next beat; the lease outlives two missed ones
                self.counters.backend_errors += 1
                continue
            if not held:
                self.counters.lost_leases += 1
                log.warning("dedupe: lost the claim on operation_id %s while producing", key)
                return

    async def close(self) -> None:
        """Let holders whose callers left finish (for at most one lease), then stop them."""
        await self._drain_holders()

    async def _drain_holders(self) -> None:
        holders = set(self._holders)
        if not holders:
            return
        _, pending = await asyncio.wait(holders, timeout=self._settings.lease_s)
        for holder in pending:  # a cancelled holder still settles its claim (release or unknown)
            holder.cancel()
        if pending:
            await asyncio.wait(pending, timeout=_STOPPED_HOLDER_S)

    def _before_run(self) -> None:  # noqa: B027 (optional hook)
        """Hook: start background machinery lazily, inside the running loop."""

    def _live(self) -> bool:
        """True while wake-ups from other holders reach `self._hub` (else waiters poll)."""
        return True

    @abstractmethod
    async def _claim(self, key: str, fp: bytes, token: bytes, *, within_s: float | None = None) -> Reply:
        """Claim an absent (or lapsed) key for `token`, or say what holds it.

        A sent claim whose lease has ended is not lapsed: it becomes a `KIND_UNKNOWN` record,
        answered as Done. `within_s` is the caller's time left: a shared backend raises
        DeadlineExceeded when it runs out before the answer (nothing was claimed for it).
        """

    @abstractmethod
    async def _mark_sent(self, key: str, fp: bytes, token: bytes) -> bool:
        """Turn `token`'s claim into a sent claim; False when `token` no longer holds it."""

    @abstractmethod
    async def _store(self, key: str, fp: bytes, token: bytes, kind: bytes, body: bytes) -> None:
        """Keep the outcome for the retention (the unknown-outcome retention for `KIND_UNKNOWN`)
        unless one is stored already; wake waiters."""

    @abstractmethod
    async def _release(self, key: str, fp: bytes, token: bytes) -> None:
        """Drop the claim (sent or not) if `token` still holds it; wake waiters."""

    @abstractmethod
    async def _renew(self, key: str, fp: bytes, token: bytes) -> bool:
        """Extend the lease if `token` still holds the claim; False when it does not."""


def _describe(span: tracing.Span, reply: Reply, waited: bool) -> None:
    """Name the claim's span by what it came to: a replay, a reuse refused, or a claim (taken over)."""
    if isinstance(reply, Done):
        span.update_name("dedupe.replay")
        outcome = "replayed"
    elif reply is MISMATCH:
        outcome = "reused"
    else:
        outcome = "taken_over" if waited else "claimed"
    span.set_attributes({"gateway.dedupe.outcome": outcome, "gateway.dedupe.waited": waited})


class _Holding:
    """The claim a holder runs produce under (`HeldClaim`)."""

    def __init__(self, store: ClaimingDeduplicator, key: str, fp: bytes, token: bytes) -> None:
        self._store = store
        self.key = key
        self.fp = fp
        self.token = token
        self.sent = False

    async def sending(self) -> None:
        """See `HeldClaim.sending`."""
        if self.sent:
            return
        try:
            held = await self._store._mark_sent(self.key, self.fp, self.token)
        except RedisUnavailable:
            # Not RedisUnavailable itself: that one tells the fallback to run produce anyway.
            raise errors.shared_state_unavailable(
                "the shared state that keeps a synchronous create from running twice is unreachable; "
                "nothing was sent to Toloka"
            ) from None
        if not held:
            raise errors.Unavailable(
                "another request took over this operation_id; nothing was sent by this one: retry with "
                "the same operation_id to get its outcome",
                reason="CLAIM_LOST",
                retry_after=0.1,
            )
        self.sent = True


async def _wait(woken: asyncio.Event, recheck_s: float, call: Call, key: str, lease_left_s: float) -> None:
    remaining = call.remaining()
    if remaining is not None:
        if remaining <= 0:
            raise in_progress_error(key, lease_left_s)
        recheck_s = min(recheck_s, remaining)
    try:
        async with asyncio.timeout(recheck_s):
            await woken.wait()
    except TimeoutError:
        pass
