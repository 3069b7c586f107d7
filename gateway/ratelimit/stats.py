"""Counters a metrics layer can read: plain numbers, no Prometheus here."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class LimiterStats:
    """Per-limit counters, keyed by `LimitRef.stats_label` (or "cooldown")."""

    admitted: Counter[str] = field(default_factory=Counter)
    waited: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    remaining: dict[str, int] = field(default_factory=dict)
    decisions: int = 0
    degraded_decisions: int = 0
    degraded_episodes: int = 0
