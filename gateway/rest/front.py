"""`RestFront`: Toloka's REST API (`/api/v1/...`) on its own listener, in front of the one choke point
of the request's Toloka account (`X-Toloka-Account`, or the caller's default).

Around every request, in order: a `Call` (request id, deadline from `X-Request-Timeout`), the
caller's identity (its gateway token in `Authorization`, checked as gRPC tokens are, then dropped)
and permissions, the path check, then the handler; any refusal is answered in Toloka's shape
(`rest.errors`), and one call log line and the call metrics are written, labelled with the path
template, never the path with its ids.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from gateway import errors
from gateway.call import Call
from gateway.observability import tracing
from gateway.observability.call_log import log_call
from gateway.observability.metrics import GatewayMetrics
from gateway.quota import QuotaService
from gateway.rest.errors import error_response, http_error_response, toloka_error
from gateway.rest.passthrough import FORWARDED_METHODS, passthrough
from gateway.rest.quota_route import QUOTA_PATH, check_quota_request, quota_response
from gateway.rest.relay_protocol import Relay
from gateway.rest.request_span import request_span
from gateway.rest.routes import API_ROOT, template_of_path
from gateway.rest.shared_paths import SharedPaths
from gateway.settings import RestSettings, SettingsError, parse_duration

log = logging.getLogger("gateway.calls")
CALL_KEY = web.RequestKey("call", Call)
TIMEOUT_HEADER = "X-Request-Timeout"
ACCOUNT_HEADER = "X-Toloka-Account"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpAuth(Protocol):
    """Caller identity and permissions for REST requests (`gateway.rpc.auth.CallerAuth`)."""

    def identify_http(self, authorization: str, caller_id: str) -> str:
        """The caller's name, or Unauthenticated."""
        ...

    def authorize_http(self, caller: str, method: str, path: str, account: str) -> None:
        """PermissionDenied / Unauthenticated unless the request is allowed in `account`."""
        ...

    def allowed_pools(self, caller: str, account: str) -> frozenset[str] | None:
        """The pools of `account` the caller may use, or None for every pool."""
        ...

    def account_for(self, caller: str, requested: str) -> str:
        """The Toloka account the request goes to (`X-Toloka-Account`, or the caller's default)."""
        ...


class AccountFront(Protocol):
    """What the front needs of one Toloka account (`gateway.account_stack.AccountStack`)."""

    @property
    def toloka(self) -> Relay:
        """The account's Toloka client: the choke point every relayed request goes through."""
        ...

    @property
    def paths(self) -> SharedPaths:
        """The requests the account's use cases answer instead of a relay."""
        ...

    @property
    def quota(self) -> QuotaService:
        """GetQuota of the account's limits."""
        ...


def request_deadline(call: Call, header: str | None) -> float | None:
    """The deadline an `X-Request-Timeout` (seconds, or a duration such as 500ms) gives, or None."""
    if not header:
        return None
    try:
        seconds = parse_duration(header, name=TIMEOUT_HEADER)
    except SettingsError as e:
        raise errors.InvalidArgument(str(e), reason="BAD_REQUEST_TIMEOUT") from None
    if seconds <= 0:
        raise errors.InvalidArgument(f"{TIMEOUT_HEADER} must be positive", reason="BAD_REQUEST_TIMEOUT")
    return call.clock.now() + seconds


def _check_path(request: web.Request) -> None:
    """NotFound for a path outside /api/v1 or one with `.`/`..` segments (never forwarded), but
    the gateway's own quota path."""
    if request.path == QUOTA_PATH:
        return check_quota_request(request)
    raw = request.rel_url.raw_path
    segments = request.path.split("/")
    if not raw.startswith(API_ROOT + "/") or "." in segments or ".." in segments or "%2e" in raw.lower():
        raise errors.NotFound(
            f"{request.path} is not a Toloka API path (/api/v1/...)", reason="NOT_AN_API_PATH"
        )
    if request.method not in FORWARDED_METHODS:
        raise web.HTTPMethodNotAllowed(request.method, sorted(FORWARDED_METHODS))


class RestFront:
    """The REST listener: one aiohttp application, one passthrough handler."""

    def __init__(
        self,
        *,
        settings: RestSettings,
        auth: HttpAuth,
        accounts: Callable[[Call], AccountFront],
        caller_header: str,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self._settings = settings
        self._auth = auth
        self._of = accounts
        self._caller_header = caller_header
        self._metrics = metrics
        self._runner: web.AppRunner | None = None
        self.port = 0
        # The span middleware only while tracing is on: off, a request never passes through it.
        middlewares = [request_span, self._around] if tracing.enabled else [self._around]
        self.app = web.Application(middlewares=middlewares, client_max_size=settings.max_body_bytes)
        self.app.router.add_route("*", "/{tail:.*}", self._handle)

    async def start(self) -> int:
        """Listen on `settings.listen`; returns the bound port."""
        host, _, port = self._settings.listen.rpartition(":")
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        # "[::]" means every interface of both families, as gRPC's listener takes it (asyncio would
        # bind "::" to IPv6 only).
        bind = None if host.strip("[]") in ("", "::") else host.strip("[]")
        site = web.TCPSite(self._runner, bind, int(port))
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else int(port)
        return self.port

    async def close(self) -> None:
        """Stop listening; in-flight requests end."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        call = request[CALL_KEY]
        account = self._of(call)
        if request.path == QUOTA_PATH:
            return await quota_response(request, call, account.quota)
        return await passthrough(request, call, account.toloka, account.paths)

    def _admit(self, request: web.Request, call: Call) -> None:
        """Identify and authorise the caller, then check the path and the deadline."""
        call.caller = self._auth.identify_http(
            request.headers.get("Authorization", ""), request.headers.get(self._caller_header, "")
        )
        call.account = self._auth.account_for(call.caller, request.headers.get(ACCOUNT_HEADER, ""))
        self._auth.authorize_http(call.caller, request.method, request.path, call.account)
        call.pools = self._auth.allowed_pools(call.caller, call.account)
        _check_path(request)
        call.deadline = request_deadline(call, request.headers.get(TIMEOUT_HEADER))

    @web.middleware
    async def _around(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        call = Call()
        if tracing.enabled:
            call.trace_id = tracing.current_trace_id()
        request[CALL_KEY] = call
        try:
            self._admit(request, call)
            response = await handler(request)
        except errors.GatewayError as e:
            response = error_response(e, request_id=call.request_id)
        except web.HTTPException as e:
            response = http_error_response(e, request_id=call.request_id)
        except Exception as e:
            log.error("unhandled error", exc_info=e, extra={"request_id": call.request_id})
            response = toloka_error(
                500,
                "INTERNAL_ERROR",
                f"internal error; quote request id {call.request_id}",
                request_id=call.request_id,
            )
        finally:
            call.release_held()
        self._log(request, call, response.status, started)
        return response

    def _log(self, request: web.Request, call: Call, status: int, started: float) -> None:
        path = request.path if request.path == QUOTA_PATH else template_of_path(request.path)
        method = f"{request.method} {path}"
        log_call(method, str(status), started, call, self._metrics)
