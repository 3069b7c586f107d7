"""Envoy's rate-limit service (`envoy.service.ratelimit.v3.RateLimitService`) on the gRPC port,
answered from the same sliding-window limits the gateway's own Toloka requests spend.

    descriptors.py  a ShouldRateLimit request -> each descriptor's hit and account (the mapping)
    answer.py       a Decision -> the RateLimitResponse: per-descriptor statuses, RateLimit-* headers
    servicer.py     RateLimitServicer: one decision per account, at once (never wait), count,
                    answer; add_to_server

The mapping, the answers and the failure modes: docs/configuration.md ("[rls]") and
docs/operating.md ("Mesh-side enforcement").
"""

from gateway.rls.servicer import RLS_SERVICE_NAME, RateLimitServicer, add_to_server

__all__ = ["RLS_SERVICE_NAME", "RateLimitServicer", "add_to_server"]
