"""The `[observability]` group: the metrics listener and the log level."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from gateway.settings.parsing import apply_table


@dataclass(frozen=True)
class ObservabilitySettings:
    """Metrics listener and logging."""

    metrics_listen: str = ""
    log_level: str = "INFO"


def observability_from(
    table: Mapping[str, Any], env: Mapping[str, str], *, metrics_listen: str | None
) -> ObservabilitySettings:
    """ObservabilitySettings from the `[observability]` table, then env vars, then the flag."""
    observability = apply_table(ObservabilitySettings(), table, "observability")
    return replace(
        observability,
        metrics_listen=metrics_listen or env.get("GATEWAY_METRICS_LISTEN") or observability.metrics_listen,
        log_level=(env.get("GATEWAY_LOG_LEVEL") or observability.log_level).upper(),
    )
