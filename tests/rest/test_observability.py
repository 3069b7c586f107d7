"""A REST call is logged and counted like a gRPC call: by path template and caller, never ids or tokens."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from tests.rest.conftest import GATEWAY_KEY, TOKENS, Front


async def test_call_log_and_metrics_name_the_template_when_a_rest_call_ends(
    front: Front, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.calls")
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{front.url}/api/v1/pools/2", headers=front.auth("reader")) as r:
            assert r.status == 200
        async with s.post(f"{front.url}/api/v1/pools/2/open", headers=front.auth("reader")) as r:
            assert r.status == 403
    calls = [r for r in caplog.records if r.name == "gateway.calls" and r.getMessage() == "call"]
    seen = {(r.__dict__["method"], r.__dict__["caller"], r.__dict__["status"]) for r in calls}
    assert ("GET /api/v1/pools/{id}", "reader", "200") in seen
    assert ("POST /api/v1/pools/{id}/open", "reader", "403") in seen
    assert all(r.__dict__["request_id"] and r.__dict__["duration_ms"] >= 0 for r in calls)
    text = caplog.text + str([r.__dict__ for r in calls])
    assert TOKENS["reader"] not in text and GATEWAY_KEY not in text and "/pools/2" not in text
    metrics = front.gateway.gateway.metrics.render().decode()
    assert 'method="GET /api/v1/pools/{id}"' in metrics
    assert "/pools/2" not in metrics


async def test_metric_labels_stay_bounded_when_callers_send_arbitrary_paths(front: Front) -> None:
    async with aiohttp.ClientSession() as s:
        for word in ("alpha", "beta", "gamma"):
            async with s.get(f"{front.url}/api/v1/{word}/x/{word}", headers=front.auth()) as r:
                assert r.status == 501  # the emulator's answer for an endpoint it lacks, relayed
    metrics = front.gateway.gateway.metrics.render().decode()
    assert 'method="GET /api/v1/{name}/{name}/{name}"' in metrics
    assert "alpha" not in metrics and "gamma" not in metrics
