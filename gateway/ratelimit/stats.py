"""Counters a metrics layer can read: plain numbers, no Prometheus here."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class LimiterStats:
    """Per-limit counters, keyed by `LimitRef.stats_label` (or "cooldown").

    `remaining` holds global limits only (a caller's quota would need the caller as a label);
    `shadow_refused` is keyed by (limit label, request kind).
    """

    admitted: Counter[str] = field(default_factory=Counter)
    waited: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    remaining: dict[str, int] = field(default_factory=dict)
    shadow_refused: Counter[tuple[str, str]] = field(default_factory=Counter)
    decisions: int = 0
    degraded_decisions: int = 0
    degraded_episodes: int = 0
