"""The REST front's server span: one per request, continuing the caller's `traceparent` header.

Installed as the front's outermost middleware only while tracing is on (off, requests never pass
through it); the span is current while the front's own middleware and handler run, so the call's
log line, the rate-limit wait, dedupe and every Toloka attempt land in the caller's trace.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.observability import tracing
from gateway.rest.quota_route import QUOTA_PATH
from gateway.rest.routes import template_of_path

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def request_span(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run the request inside its server span, and record the answer's status on it."""
    carrier = {
        key: value for key in ("traceparent", "tracestate") if (value := request.headers.get(key)) is not None
    }
    template = QUOTA_PATH if request.path == QUOTA_PATH else template_of_path(request.path)
    attributes = {"http.request.method": request.method, "http.route": template}
    with tracing.server_span(f"{request.method} {template}", carrier, attributes) as span:
        response = await handler(request)
        tracing.end_http(span, response.status)
    return response
