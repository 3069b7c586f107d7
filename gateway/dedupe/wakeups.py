"""In-process wake-ups for waiters: one event per waiting call, woken by key."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


class WakeupHub:
    """Waiters register for a key; a backend calls `notify(key)` when the key's claim settles."""

    def __init__(self) -> None:
        self._by_key: dict[str, set[asyncio.Event]] = {}

    @contextmanager
    def watch(self, key: str) -> Iterator[asyncio.Event]:
        """An event set by every later `notify(key)` or `notify_all()` while the block runs."""
        event = asyncio.Event()
        events = self._by_key.setdefault(key, set())
        events.add(event)
        try:
            yield event
        finally:
            events.discard(event)
            if not events:
                self._by_key.pop(key, None)

    def notify(self, key: str) -> None:
        """Wake every waiter of `key` in this process."""
        for event in self._by_key.get(key, ()):
            event.set()

    def notify_all(self) -> None:
        """Wake every waiter (e.g. after a lost subscription, when messages may have been missed)."""
        for events in self._by_key.values():
            for event in events:
                event.set()

    def __len__(self) -> int:
        return sum(len(events) for events in self._by_key.values())
