"""`GET /gateway/v1/quota[?kind=KIND]` on the REST front: GetQuota's answer as JSON.

The caller is the one the request's gateway token names, identified and authorised as for its
`/api/v1` requests (a `rest` rule must allow `GET /gateway/v1/quota`; `"GET"` does). The body:
`{"account", "limits": [{name, caller, kinds, unit, capacity, period_s, remaining, next_unit_in_s,
shadow}], "degraded", "toloka_cooldown_s"}` (`gateway.quota.as_json`); an unknown kind is a 400
VALIDATION_ERROR naming it.
"""

from __future__ import annotations

from aiohttp import web

from gateway import errors
from gateway.call import Call
from gateway.quota import QuotaService, as_json
from gateway.rest.shared_paths import json_response

QUOTA_PATH = "/gateway/v1/quota"
KIND_PARAM = "kind"


def check_quota_request(request: web.Request) -> None:
    """Only GET, and only the `kind` parameter, at most once."""
    if request.method != "GET":
        raise web.HTTPMethodNotAllowed(request.method, ["GET"])
    unknown = sorted(set(request.query) - {KIND_PARAM})
    if unknown:
        shown = ", ".join(repr(name[:64]) for name in unknown[:5])
        raise errors.InvalidArgument(f"unknown query parameter(s) {shown}; only kind is taken")
    if len(request.query.getall(KIND_PARAM, [])) > 1:
        raise errors.InvalidArgument("kind may be given once")


async def quota_response(request: web.Request, call: Call, quota: QuotaService) -> web.Response:
    """The limits that apply to `call.caller` in its account now, narrowed to `?kind=` when given."""
    snapshot = await quota.read(request.query.get(KIND_PARAM, ""), call)
    return json_response(as_json(snapshot, quota.account))
