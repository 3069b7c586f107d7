"""The one lease primitive: a key that names its holder by a random token and expires by itself.

    acquire   SET key token NX PX lease       (one holder at a time)
    renew     extend the expiry, only while the token still holds the key
    release   delete the key, only while the token still holds it
    expire    Redis's own PX: a holder that died frees the key after one lease

Every round trip is bounded by the shared health (`guard`). The pool lock holds one per pool;
the poller's lease is taken and renewed inside its heartbeat script (it decides together with
the waiter set), and given back here. The dedupe claim is a lease whose value is a record (the
request's fingerprint, the holder, whether it was sent), so its scripts test and rewrite that
record instead of a bare token: see `dedupe/redis_store.py`.
"""

from __future__ import annotations

import secrets

from gateway.shared_state.shared import SharedRedis

RENEW_LUA = """
-- Extend a lease while its holder still holds it.
-- KEYS[1]  the lease key
-- ARGV[1]  the holder's token   ARGV[2] the lease in milliseconds
-- returns  1 when extended, 0 when the lease has passed (expired, or taken by another token)
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

RELEASE_LUA = """
-- Give a lease back while its holder still holds it.
-- KEYS[1]  the lease key
-- ARGV[1]  the holder's token
-- returns  1 when released, 0 when the lease had already passed to someone else (or expired)
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def new_token() -> str:
    """A holder token: 128 random bits."""
    return secrets.token_hex(16)


class Leases:
    """Leases on one shared Redis, `lease_s` long each."""

    def __init__(self, shared: SharedRedis, *, lease_s: float) -> None:
        self._shared = shared
        self.lease_s = lease_s
        self._lease_ms = max(1, round(lease_s * 1000))
        self._renew = shared.script(RENEW_LUA)
        self._release = shared.script(RELEASE_LUA)

    async def acquire(self, key: str, token: str, *, within_s: float | None = None) -> bool:
        """Take the lease if nobody holds it; True when `token` holds it now."""
        async with self._shared.health.guard(within_s=within_s):
            redis = await self._shared.ready()
            return bool(await redis.set(key, token, nx=True, px=self._lease_ms))

    async def renew(self, key: str, token: str) -> bool:
        """Extend the lease by `lease_s`; False when it was lost."""
        async with self._shared.health.guard():
            return bool(await self._renew(keys=[key], args=[token, self._lease_ms]))

    async def release(self, key: str, token: str) -> bool:
        """Give the lease back; False when it had already passed."""
        async with self._shared.health.guard():
            return bool(await self._release(keys=[key], args=[token]))
