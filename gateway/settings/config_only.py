"""The groups only the config file sets, `[dedupe]`, `[poller]` and `[rework]`: no flag or env var.

Each is parsed by `parsing.apply_table` alone (known keys only; `*_s` keys accept duration units).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DedupeSettings:
    """Operation-id dedupe: how long a claim is leased and how long outcomes are kept.

    The holder renews its lease every lease_s/3, so a short lease costs little and lets the
    duplicates of a holder that died (SIGKILL, node loss) proceed within about lease_s.
    """

    lease_s: float = 6.0
    retention_s: float = 86400.0
    # How long an unknown outcome (a synchronous create that may have happened) and the mark of one
    # in flight are kept; 0 keeps them until someone deletes them, since a person settles them.
    unknown_retention_s: float = 0.0
    max_stored_bytes: int = 4 * 1024 * 1024
    key_prefix: str = "tgw"


@dataclass(frozen=True)
class PollerSettings:
    """The shared operation poller's schedule, lease and cache."""

    initial_interval_s: float = 0.5
    max_interval_s: float = 4.0
    multiplier: float = 1.6
    jitter: float = 0.2
    lease_s: float = 5.0
    final_retention_s: float = 86400.0
    fresh_s: float = 0.5
    max_wait_s: float = 300.0
    key_prefix: str = "tgw"


@dataclass(frozen=True)
class ReworkSettings:
    """SetReworkRules: the per-pool write lock and the waits around a pool write."""

    lock_lease_s: float = 30.0
    lock_wait_s: float = 60.0
    operation_wait_s: float = 60.0
    reopen_grace_s: float = 30.0
    key_prefix: str = "tgw"
