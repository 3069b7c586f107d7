"""TolokaClient: one method per Toloka endpoint, every request through one `_send` choke point.

Each endpoint method builds a `TolokaRequest` (kind, method, path, query, body, cost in tasks,
idempotency) and `_send` runs it, attempt after attempt:

    limiter.acquire(kind, cost)              every attempt: retries and polls count against limits
    idempotency.before_send()                once, before the first attempt leaves
    _attempt: one HTTP exchange, timed by RetryPolicy.attempt_timeout (nothing sent past the deadline)
      2xx                                    -> Reply
      not retryable (400, 401, 404, 409...)  raise error_map.error_from_response(...)
      408 / 429 / 5xx / no answer            -> Failure(error, may_have_acted)
    after a Failure:
      may have acted, never re-sent blind    raise OutcomeUnknown            (error_map.outcome_unknown)
      the caller's deadline has passed       raise DeadlineExceeded          (error_map.deadline_exceeded)
      may have acted, a `settle` hook        its Reply, when it has one
      RetryPolicy.delay: no retry allowed    raise the failure: Unavailable / RateLimited, with RetryInfo
      else pause, then the next attempt

Everything raised is a `gateway.errors` error built in `error_map` (the only HTTP -> domain map).
A 429 also makes the limiter hold back that kind of request fleet-wide. Task creation always
re-sends the SAME `operation_id`; an async create's `409 OPERATION_ALREADY_EXISTS` is settled by
reading the operation (`OPERATION_ALREADY_PERFORMED` when it cannot be read back).

The transport is `http1.Http1Pool`, keep-alive connections to the one origin: measured, it costs
about half the CPU per request of aiohttp's ClientSession, and a fraction of the other clients
tried (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import orjson

from gateway import errors
from gateway.call import Call
from gateway.observability import tracing
from gateway.observability.metrics import GatewayMetrics
from gateway.ratelimit.limiter import RateLimiter
from gateway.request_kinds import (
    KIND_CREATE_TASKS,
    KIND_GET_OPERATION,
    KIND_GET_OPERATION_LOG,
    KIND_GET_POOL,
    KIND_POOL_ACTION,
    KIND_UPDATE_POOL,
    KIND_UPDATE_POOL_OVERLAP,
)
from gateway.settings import TolokaSettings
from gateway.settings.accounts import DEFAULT_ACCOUNT
from gateway.toloka import error_map
from gateway.toloka.http1 import ConnectFailed, Http1Pool, Response
from gateway.toloka.relay import Relayed, end_to_end_headers, redact
from gateway.toloka.request import BeforeSend, Idempotency, Reply, Settle, TolokaRequest
from gateway.toloka.retry_budget import RetryBudget
from gateway.toloka.retry_policy import Failure, RetryPolicy, parse_retry_after
from gateway.translate.tasks import CreateTasksPlan

__all__ = ["Reply", "TolokaClient", "authorization_header", "parse_retry_after"]

log = logging.getLogger(__name__)

DEFAULT_THROTTLE_S = 1.0
SMALL_RELAYED_BODY = 256 * 1024  # a relayed 2xx body up to this size is read whole, larger ones stream


def authorization_header(secret: str) -> str:
    """`ApiKey <key>` for API-key-shaped secrets, `OAuth <token>` otherwise (as Toloka's SDKs do)."""
    secret = secret.strip()
    if secret.startswith(("ApiKey ", "OAuth ")):
        return secret
    if secret.count(".") == 2 and secret.index(".") in (22, 23, 24):
        return f"ApiKey {secret}"
    return f"OAuth {secret}"


class TolokaClient:
    """Typed access to the Toloka endpoints the gateway uses."""

    def __init__(
        self,
        *,
        settings: TolokaSettings,
        base_url: str,
        limiter: RateLimiter,
        retry: RetryPolicy | None = None,
        metrics: GatewayMetrics | None = None,
        account: str = DEFAULT_ACCOUNT,
    ) -> None:
        self._settings = settings
        self._base = base_url.rstrip("/") + "/api/v1"
        self._limiter = limiter
        self._retry = retry or RetryPolicy.from_settings(settings)
        self._pool: Http1Pool | None = None
        self._metrics = metrics
        self._account = account  # the `account` label of every metric this client updates
        # Identity: without Accept-Encoding a server may use any coding, and bodies are parsed,
        # redacted and relayed as they arrive (the pool decodes no content coding).
        self._headers = {
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            "User-Agent": "toloka-gateway",
        }
        if settings.api_key:
            self._headers["Authorization"] = authorization_header(settings.api_key)
        elif settings.uses_emulator:
            self._headers["Authorization"] = "OAuth emulator"
        if settings.act_under_account_id:
            self._headers["X-Act-Under-Account-ID"] = settings.act_under_account_id
        # Blanked out of every relayed error body (Toloka may echo the request's headers).
        self._secrets = tuple(
            v.encode() for v in (settings.api_key.strip(), self._headers.get("Authorization", "")) if v
        )

    @property
    def retry_budget(self) -> RetryBudget:
        """The process-wide retry budget (for metrics)."""
        return self._retry.budget

    def __repr__(self) -> str:  # never show the key
        return f"TolokaClient(base={self._base!r})"

    async def start(self) -> None:
        """Open the connection pool."""
        if self._pool is None:
            self._pool = Http1Pool(
                self._base, max_connections=self._settings.max_connections, headers=self._headers
            )

    async def close(self) -> None:
        """Close the connection pool."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # ---- endpoints -------------------------------------------------------------------------

    async def create_tasks(
        self, plan: CreateTasksPlan, *, call: Call, before_send: BeforeSend | None = None
    ) -> Reply:
        """`POST /tasks`: 202 Operation (async) or 201 batch result (sync).

        A 409 OPERATION_ALREADY_EXISTS, or an ambiguous failure, resolves to the existing
        operation read with `GET /operations/{operation_id}` (async mode). A sync create that
        Toloka may have performed raises OutcomeUnknown and is never re-sent; `before_send` runs
        once, right before its first attempt leaves (after the rate limit admitted it).
        """
        settle = self._operation_settler(plan.operation_id, call) if plan.is_async else None
        request = TolokaRequest(
            kind=KIND_CREATE_TASKS,
            method="POST",
            path="/tasks",
            query=plan.params,
            body=plan.body,
            cost=plan.task_count,
            field_prefix="tasks",
            # Toloka's operation-id idempotency is documented for async mode only: a sync
            # create that may have been performed is reported, never repeated blind.
            idempotency=Idempotency(resend_after_acted=plan.is_async, settle=settle, before_send=before_send),
        )
        try:
            return await self._send(request, call)
        except errors.FailedPrecondition as e:
            if not error_map.is_operation_already_exists(e):
                raise
            existing = await settle() if settle is not None else None
            if existing is None:
                raise error_map.already_performed(plan.operation_id, e) from None
            return existing

    def _operation_settler(self, operation_id: str, call: Call) -> Settle:
        """Reads the operation an async create made, if Toloka has it (None when it does not)."""

        async def settle() -> Reply | None:
            try:
                return Reply(200, await self.get_operation(operation_id, call))
            except errors.NotFound:
                return None

        return settle

    async def get_operation(self, operation_id: str, call: Call) -> dict[str, Any]:
        """`GET /operations/{id}`."""
        path = f"/operations/{operation_id}"
        reply = await self._send(TolokaRequest(kind=KIND_GET_OPERATION, method="GET", path=path), call)
        return dict(reply.data)

    async def get_operation_log(self, operation_id: str, call: Call) -> list[dict[str, Any]]:
        """`GET /operations/{id}/log`: one item per task, in input order."""
        path = f"/operations/{operation_id}/log"
        reply = await self._send(TolokaRequest(kind=KIND_GET_OPERATION_LOG, method="GET", path=path), call)
        return list(reply.data or [])

    async def get_pool(self, pool_id: str, call: Call) -> dict[str, Any]:
        """`GET /pools/{id}`."""
        reply = await self._send(
            TolokaRequest(kind=KIND_GET_POOL, method="GET", path=f"/pools/{pool_id}"), call
        )
        return dict(reply.data)

    async def update_pool(
        self, pool_id: str, pool: Mapping[str, Any], *, changes_overlap: bool, call: Call
    ) -> dict[str, Any]:
        """`PUT /pools/{id}` with the whole pool; overlap-changing writes count against their own limit."""
        request = TolokaRequest(
            kind=KIND_UPDATE_POOL_OVERLAP if changes_overlap else KIND_UPDATE_POOL,
            method="PUT",
            path=f"/pools/{pool_id}",
            body=orjson.dumps(pool),
            field_prefix="pool.",
        )
        return dict((await self._send(request, call)).data)

    async def pool_action(self, pool_id: str, action: str, call: Call) -> dict[str, Any] | None:
        """`POST /pools/{id}/{open|close|close-for-update|archive}`: the Operation, or None on 204."""
        path = f"/pools/{pool_id}/{action}"
        reply = await self._send(TolokaRequest(kind=KIND_POOL_ACTION, method="POST", path=path), call)
        return None if reply.status == 204 or not reply.data else dict(reply.data)

    # ---- the choke point -------------------------------------------------------------------

    async def _send(self, request: TolokaRequest, call: Call) -> Reply:
        """Send one logical request: rate limit, deadline, retries, error mapping.

        After a failure that Toloka may have acted on (sent without an answer, or a 5xx), a
        request that must not be repeated blind fails as OutcomeUnknown; any other is settled
        first (`idempotency.settle`) and only then re-sent. Any other error raised here means
        Toloka did not act on a request that must not be repeated blind.
        """
        idempotency = request.idempotency
        attempt = 0
        try:
            while True:
                attempt += 1
                if tracing.enabled:
                    await self._acquire_traced(request, call)
                else:
                    await self._limiter.acquire(request.kind, tasks=request.cost, call=call)
                if idempotency.before_send is not None and attempt == 1:
                    await idempotency.before_send()
                if tracing.enabled:
                    outcome = await self._attempt_traced(request, call, attempt)
                else:
                    outcome = await self._attempt(request, call)
                if isinstance(outcome, Reply):
                    self._retry.budget.on_success()
                    return outcome
                self._retry.budget.on_failure()
                if outcome.may_have_acted and not idempotency.resend_after_acted:
                    raise error_map.outcome_unknown(outcome.error)
                self._retry.check_deadline(outcome.error, attempt, call.remaining())
                if outcome.may_have_acted and idempotency.settle is not None:
                    settled = await idempotency.settle()
                    if settled is not None:
                        return settled
                delay = self._retry.delay(outcome.error, attempt, call.remaining())
                if self._metrics is not None:
                    self._metrics.observe_toloka_retry(request.kind, self._account)
                await self._retry.pause(delay)
        except errors.RateLimited as e:  # whose budget refused: the limit names are the account's own
            e.metadata.setdefault("account", self._account)
            raise

    async def _acquire_traced(self, request: TolokaRequest, call: Call) -> None:
        """The limiter's admission inside its span (a refusal marks the span an error)."""
        attributes = {
            "gateway.request_kind": request.kind,
            "gateway.cost": request.cost,
            "gateway.account": self._account,
        }
        with tracing.span("ratelimit.wait", attributes):
            await self._limiter.acquire(request.kind, tasks=request.cost, call=call)

    async def _attempt_traced(self, request: TolokaRequest, call: Call, attempt: int) -> Reply | Failure:
        """`_attempt` inside its client span, whose context goes to Toloka as `traceparent`."""
        attributes = {
            "http.request.method": request.method,
            "url.path": request.path,
            "http.request.resend_count": attempt - 1,
            "gateway.request_kind": request.kind,
            "gateway.account": self._account,
        }
        with tracing.span(f"toloka {request.kind}", attributes, client=True):
            return await self._attempt(request, call, tracing.outgoing_headers())

    async def _attempt(
        self, request: TolokaRequest, call: Call, trace_headers: Mapping[str, str] | None = None
    ) -> Reply | Failure:
        """One HTTP exchange: a Reply, or a Failure a retry might fix; other failures are raised."""
        timeout = self._retry.attempt_timeout(call.remaining(), cut_at_deadline=request.cut_at_deadline)
        sent_at = time.perf_counter()
        try:
            if request.relay:
                status, data, headers, relayed = await self._exchange_relayed(request, timeout, trace_headers)
            else:
                status, data, headers = await self._exchange(request, timeout, trace_headers)
                relayed = None
        except (OSError, TimeoutError) as exc:
            self._observe(request.kind, "network", sent_at)
            sent = not isinstance(exc, ConnectFailed)
            log.debug("toloka %s %s: %s", request.method, request.path, type(exc).__name__)
            return Failure(error_map.network_error(sent=sent), may_have_acted=sent)
        self._observe(request.kind, str(status), sent_at)
        if status < 300:
            return Reply(status, data, relayed)
        retry_after = parse_retry_after(headers.get("Retry-After"))
        failure = error_map.error_from_response(
            status, data, retry_after=retry_after, field_prefix=request.field_prefix
        )
        if failure.toloka_request_id:
            call.toloka_request_ids.append(failure.toloka_request_id)
        if status == 429:
            await self._limiter.report_throttled(retry_after or DEFAULT_THROTTLE_S, kind=request.kind)
        if not self._retry.retries(status):
            self._retry.budget.on_success()  # a definite answer: Toloka is up
            if relayed is not None and not error_map.is_credentials_rejected(status, data):
                return Reply(status, data, relayed)  # the caller acts on Toloka's own refusal
            raise failure
        return Failure(failure, may_have_acted=status >= 500)  # 408 and 429: Toloka did not act on it

    async def relay(self, request: TolokaRequest, call: Call) -> Reply:
        """Send a relayed request (`request.relay`) through `_send`; the caller releases `reply.relayed`."""
        assert request.relay, "relay() takes relayed requests only"
        return await self._send(request, call)

    async def _connected(self) -> Http1Pool:
        if self._pool is None:
            await self.start()
        assert self._pool is not None
        return self._pool

    async def _request(self, request: TolokaRequest, trace_headers: Mapping[str, str] | None) -> Response:
        """Send `request` on a pooled connection; its answer's head has arrived, the body not yet."""
        pool = await self._connected()
        return await pool.request(
            request.method,
            request.url(pool.prefix),
            body=request.body,
            content_type=_type_of(request.body),
            headers=trace_headers,
        )

    async def _exchange(
        self, request: TolokaRequest, limit_s: float, trace_headers: Mapping[str, str] | None
    ) -> tuple[int, Any, Mapping[str, str]]:
        """One HTTP request: status, parsed JSON body (None when empty or not JSON) and headers."""
        async with asyncio.timeout(limit_s):
            resp = await self._request(request, trace_headers)
            try:
                raw = await resp.read()
            finally:
                resp.release()
        return resp.status, _json_or_none(raw), resp.headers

    async def _exchange_relayed(
        self, request: TolokaRequest, limit_s: float, trace_headers: Mapping[str, str] | None
    ) -> tuple[int, Any, Mapping[str, str], Relayed]:
        """One relayed HTTP request: a large 2xx body is left in the connection, any other is read.

        `limit_s` bounds connecting, the wait for the answer's head and each wait for more of a
        large body, not the whole body: a large page streams for as long as it keeps coming.
        """
        async with asyncio.timeout(limit_s):  # one timer for the head and, when read here, the body
            resp = await self._request(request, trace_headers)
            relayed = Relayed(resp.status, end_to_end_headers(resp.headers), read_timeout_s=limit_s)
            length = resp.content_length
            if resp.status < 300 and (length is None or length > SMALL_RELAYED_BODY):
                relayed.response = resp  # streamed to the caller, each wait bounded by `limit_s`
                return resp.status, None, resp.headers, relayed
            try:
                raw = await resp.read()
            finally:
                resp.release()
        if resp.status < 300:
            # Read at once: one write to the caller instead of a chunked stream (headers, chunk,
            # end: three), at a bounded cost in memory.
            relayed.body = raw
            return resp.status, None, resp.headers, relayed
        relayed.body = redact(raw, self._secrets)
        return resp.status, _json_or_none(relayed.body), resp.headers, relayed

    def _observe(self, kind: str, outcome: str, sent_at: float) -> None:
        if self._metrics is not None:
            self._metrics.observe_toloka(kind, outcome, time.perf_counter() - sent_at, self._account)
        if tracing.enabled:
            tracing.record_attempt(outcome)


def _type_of(body: bytes | None) -> str | None:
    return "application/json" if body is not None else None


def _json_or_none(raw: bytes) -> Any:
    """The parsed JSON body, or None for an empty or unparsable one."""
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
