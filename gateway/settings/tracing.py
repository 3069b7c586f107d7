"""Tracing: on or off, decided from OpenTelemetry's standard `OTEL_*` variables (no config-file keys).

Tracing is on when `OTEL_TRACES_EXPORTER` names an exporter the gateway has (`otlp`, `console`), or,
with that variable unset, when an OTLP endpoint is set (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
`OTEL_EXPORTER_OTLP_ENDPOINT`). It is off when none of them is set, when `OTEL_TRACES_EXPORTER=none`,
and when `OTEL_SDK_DISABLED=true`. Everything else (endpoint, headers, TLS, sampler, resource,
batching) the OpenTelemetry SDK reads from its own variables when the gateway builds it.

OTLP goes over gRPC (grpcio is a dependency already); `OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL` may be
unset or `grpc`, and any other protocol is refused at start-up rather than silently not exported.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.settings.parsing import SettingsError

EXPORTERS = ("otlp", "console")
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")


@dataclass(frozen=True)
class TracingSettings:
    """Whether spans are made and where they go: `exporter` is "" (off), "otlp" or "console"."""

    exporter: str = ""

    @property
    def enabled(self) -> bool:
        """True when spans are made and exported."""
        return bool(self.exporter)


def tracing_from(env: Mapping[str, str] | None = None) -> TracingSettings:
    """TracingSettings from the `OTEL_*` variables of `env` (the process environment by default)."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return TracingSettings()
    names = [n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    if not names:
        names = ["otlp"] if any(env.get(k, "").strip() for k in _ENDPOINTS) else []
    names = [n for n in names if n != "none"]
    if not names:
        return TracingSettings()
    if len(names) > 1 or names[0] not in EXPORTERS:
        raise SettingsError(
            f"OTEL_TRACES_EXPORTER={env.get('OTEL_TRACES_EXPORTER')!r}: the gateway exports with one of "
            f"{', '.join(EXPORTERS)} (or none)"
        )
    if names[0] == "otlp":
        for key in _PROTOCOLS:
            protocol = env.get(key, "").strip().lower()
            if protocol and protocol != "grpc":
                raise SettingsError(
                    f"{key}={protocol!r}: the gateway exports OTLP over gRPC only; set it to grpc or "
                    "unset it, and point the endpoint at the collector's gRPC port (4317 by default)"
                )
            if protocol:
                break
    return TracingSettings(exporter=names[0])
