"""Honesty about coverage: an endpoint the emulator does not emulate answers 501 `NOT_EMULATED`.

Never 404, so no client mistakes an un-emulated endpoint for a missing resource (toloka-kit would
raise `DoesNotExistApiError`). The message and payload name the endpoint as a method and a path
template: path segments that carry an id (any segment with a digit) read `{id}`.
"""

from __future__ import annotations

from aiohttp import web

from gateway.emulator.wire import ApiError


def path_template(path: str) -> str:
    """`/api/v1/pools/17/clone` → `/api/v1/pools/{id}/clone`; the API prefix is kept as it is."""
    parts = path.split("/")
    head = parts[:3]  # "", "api", "v1"
    tail = ["{id}" if any(c.isdigit() for c in part) else part for part in parts[3:]]
    return "/".join(head + tail)


def not_emulated_error(method: str, path: str) -> ApiError:
    """501 NOT_EMULATED naming `METHOD /path/{template}`."""
    template = path_template(path)
    return ApiError(
        501,
        "NOT_EMULATED",
        f"{method} {template} is not emulated by the Toloka emulator",
        {"method": method, "path": template, "requested_path": path},
    )


async def not_emulated(request: web.Request) -> web.StreamResponse:
    """The catch-all route under `/api/`: every method and path no other route serves."""
    raise not_emulated_error(request.method, request.path)
