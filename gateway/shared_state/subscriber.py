"""The one pub/sub subscriber: a channel kept subscribed while Redis answers, its messages handed on.

A hung connection just yields no message: the backends' own round trips notice it and trip the
shared health, which ends the subscription; it is taken again once the health's probe gets an
answer. `live` is true only while Redis has confirmed the subscription, so a component that
starts relying on messages after that cannot miss one published later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.shared_state.client import REDIS_UNREACHABLE, RedisUnavailable, cancel_and_wait, own_connection
from gateway.shared_state.shared import SharedRedis

log = logging.getLogger(__name__)

_BACKOFF_S = (0.05, 1.0)  # after a confirmed subscription ends; the cap while none succeeds


def _ignore(_: bool) -> None:
    pass


class Subscription:
    """One subscription per process to `channel`; `on_message(data)` for each message.

    `on_live(True)` once Redis confirms the subscription, `on_live(False)` when it ends (messages
    may have passed unseen in between). `clock` paces the re-subscription backoff.
    """

    def __init__(
        self,
        shared: SharedRedis,
        channel: str,
        *,
        on_message: Callable[[bytes], None],
        on_live: Callable[[bool], None] = _ignore,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._shared = shared
        self._health = shared.health
        self.channel = channel
        self._on_message = on_message
        self._on_live = on_live
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._confirmed = False
        self._closing = False
        self.live = False

    def start(self) -> None:
        """Start listening in the background (idempotent; not after close)."""
        if (self._task is None or self._task.done()) and not self._closing:
            self._task = asyncio.get_running_loop().create_task(
                self._listen(), name=f"subscribe:{self.channel}"
            )

    async def close(self) -> None:
        """Stop listening."""
        self._closing = True
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _listen(self) -> None:
        backoff = _BACKOFF_S[0]
        while not self._closing:
            self._confirmed = False
            try:
                if not self._health.down:  # while it is, nothing waits on Redis
                    await self._subscribe_and_dispatch()
            except RedisUnavailable as e:
                log.debug("subscription to %s lost: %s", self.channel, e)
            except REDIS_UNREACHABLE as e:
                self._health.trip(e)
                log.debug("subscription to %s lost: %s", self.channel, e)
            backoff = _BACKOFF_S[0] if self._confirmed else min(backoff * 2, _BACKOFF_S[1])
            await self._clock.sleep(backoff)

    async def _subscribe_and_dispatch(self) -> None:
        async with self._health.guard():
            subscriber, owned = own_connection(await self._shared.ready())
        pubsub = subscriber.pubsub()
        try:
            async with self._health.guard():
                await pubsub.subscribe(self.channel)
            while not self._closing and not self._health.down:
                msg = await pubsub.get_message(timeout=1.0)
                if msg is None:
                    continue
                if msg["type"] == "message":
                    self._on_message(bytes(msg["data"]))
                elif msg["type"] == "subscribe":
                    self.live = self._confirmed = True
                    self._on_live(True)
        finally:
            if self.live:
                self.live = False
                self._on_live(False)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._health.op_timeout_s):
                    await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
            if owned:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self._health.op_timeout_s):
                        await subscriber.aclose()
