"""The tracer provider the gateway builds from the `OTEL_*` variables: its service name and exporter."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider

from gateway.observability import tracing
from gateway.settings.tracing import TracingSettings


def test_no_provider_is_built_when_tracing_is_off() -> None:
    assert tracing.build_provider(TracingSettings()) is None


@pytest.mark.parametrize(
    ("env", "service"),
    [
        ({}, "toloka-gateway"),
        ({"OTEL_SERVICE_NAME": "gateway-eu"}, "gateway-eu"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=gateway-us,k8s.pod.name=p-1"}, "gateway-us"),
    ],
)
def test_service_name_is_the_gateways_unless_the_variables_name_one(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], service: str
) -> None:
    for key in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    provider = tracing.build_provider(TracingSettings(exporter="console"))
    try:
        assert isinstance(provider, TracerProvider)
        assert provider.resource.attributes["service.name"] == service
    finally:
        provider.shutdown()
