"""TolokaClient: one method per Toloka endpoint, every request through one `_send` choke point.

`_send` takes the rate limit (retries and polls included), bounds each attempt by the
caller's deadline, retries 408/429/500/503/504 and network errors with exponential backoff,
jitter and `Retry-After`, and maps every failure to a domain error (via `error_map`, the
only HTTP -> domain map). Task creation always re-sends the SAME `operation_id`; a
`409 OPERATION_ALREADY_EXISTS`, or an ambiguous failure (sent, no answer), is settled by
reading the operation before anything is re-sent.

The transport is aiohttp: measured on the build machines it sustains several times the
request rate of stock httpx under concurrency (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import email.utils
import io
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
from yarl import URL

from gateway import errors
from gateway.call import Call
from gateway.observability.metrics import GatewayMetrics
from gateway.ratelimit.limiter import RateLimiter
from gateway.settings import (
    KIND_CREATE_TASKS,
    KIND_GET_OPERATION,
    KIND_GET_OPERATION_LOG,
    KIND_GET_POOL,
    KIND_POOL_ACTION,
    KIND_UPDATE_POOL,
    KIND_UPDATE_POOL_OVERLAP,
    TolokaSettings,
)
from gateway.toloka.error_map import RETRYABLE_STATUSES, error_from_response, network_error
from gateway.toloka.retry_budget import RetryBudget

log = logging.getLogger(__name__)

OPERATION_ALREADY_EXISTS = "OPERATION_ALREADY_EXISTS"
DEFAULT_THROTTLE_S = 1.0
LARGE_BODY = 256 * 1024


@dataclass(frozen=True)
class Reply:
    """A 2xx answer: status and parsed JSON body (None for an empty body)."""

    status: int
    data: Any


def authorization_header(secret: str) -> str:
    """`ApiKey <key>` for API-key-shaped secrets, `OAuth <token>` otherwise (as Toloka's SDKs do)."""
    secret = secret.strip()
    if secret.startswith(("ApiKey ", "OAuth ")):
        return secret
    if secret.count(".") == 2 and secret.index(".") in (22, 23, 24):
        return f"ApiKey {secret}"
    return f"OAuth {secret}"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


class TolokaClient:
    """Typed access to the Toloka endpoints the gateway uses."""

    def __init__(
        self,
        *,
        settings: TolokaSettings,
        base_url: str,
        limiter: RateLimiter,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self._settings = settings
        self._base = base_url.rstrip("/") + "/api/v1"
        self._limiter = limiter
        self._sleep = sleep
        self._rng = rng
        self._session: aiohttp.ClientSession | None = None
        self._metrics = metrics
        self.retry_budget = RetryBudget(
            max_tokens=settings.retry_budget_tokens, token_ratio=settings.retry_budget_ratio
        )
        self._headers = {"Accept": "application/json", "User-Agent": "toloka-gateway"}
        if settings.api_key:
            self._headers["Authorization"] = authorization_header(settings.api_key)
        elif settings.uses_emulator:
            self._headers["Authorization"] = "OAuth emulator"
        if settings.act_under_account_id:
            self._headers["X-Act-Under-Account-ID"] = settings.act_under_account_id

    def __repr__(self) -> str:  # never show the key
        return f"TolokaClient(base={self._base!r})"

    async def start(self) -> None:
        """Open the connection pool."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._settings.max_connections, ttl_dns_cache=300, timeout_ceil_threshold=math.inf
            )
            self._session = aiohttp.ClientSession(
                connector=connector, headers=self._headers, json_serialize=lambda o: orjson.dumps(o).decode()
            )

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ---- endpoints -------------------------------------------------------------------------

    async def create_tasks(
        self,
        body: bytes,
        *,
        params: Mapping[str, str],
        tasks: int,
        call: Call,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> Reply:
        """`POST /tasks`: 202 Operation (async) or 201 batch result (sync).

        A 409 OPERATION_ALREADY_EXISTS, or an ambiguous failure, resolves to the existing
        operation read with `GET /operations/{operation_id}` (async mode). A sync create that
        Toloka may have performed raises OutcomeUnknown and is never re-sent; `before_send` runs
        once, right before its first attempt leaves (after the rate limit admitted it).
        """
        operation_id = params.get("operation_id", "")
        is_async = params.get("async_mode") == "true"

        async def settle() -> Reply | None:
            if not (is_async and operation_id):
                return None
            try:
                return Reply(200, await self.get_operation(operation_id, call))
            except errors.NotFound:
                return None

        try:
            return await self._send(
                "POST", "/tasks", kind=KIND_CREATE_TASKS, tasks=tasks, params=params, body=body,
                call=call, settle=settle, field_prefix="tasks",
                # Toloka's operation-id idempotency is documented for async mode only: a sync
                # create that may have been performed is reported, never repeated blind.
                resend_after_send=is_async, before_send=before_send,
            )  # fmt: skip
        except errors.FailedPrecondition as e:
            if e.toloka_code != OPERATION_ALREADY_EXISTS or isinstance(e, errors.OutcomeUnknown):
                raise
            existing = await settle()
            if existing is None:
                raise errors.FailedPrecondition(
                    f"Toloka already performed operation {operation_id}; its result cannot be read back "
                    "in synchronous mode",
                    reason="OPERATION_ALREADY_PERFORMED",
                    toloka_code=e.toloka_code,
                    toloka_request_id=e.toloka_request_id,
                ) from None
            return existing

    async def get_operation(self, operation_id: str, call: Call) -> dict[str, Any]:
        """`GET /operations/{id}`."""
        reply = await self._send("GET", f"/operations/{operation_id}", kind=KIND_GET_OPERATION, call=call)
        return dict(reply.data)

    async def get_operation_log(self, operation_id: str, call: Call) -> list[dict[str, Any]]:
        """`GET /operations/{id}/log`: one item per task, in input order."""
        reply = await self._send(
            "GET", f"/operations/{operation_id}/log", kind=KIND_GET_OPERATION_LOG, call=call
        )
        return list(reply.data or [])

    async def get_pool(self, pool_id: str, call: Call) -> dict[str, Any]:
        """`GET /pools/{id}`."""
        reply = await self._send("GET", f"/pools/{pool_id}", kind=KIND_GET_POOL, call=call)
        return dict(reply.data)

    async def update_pool(
        self, pool_id: str, pool: Mapping[str, Any], *, changes_overlap: bool, call: Call
    ) -> dict[str, Any]:
        """`PUT /pools/{id}` with the whole pool; overlap-changing writes count against their own limit."""
        kind = KIND_UPDATE_POOL_OVERLAP if changes_overlap else KIND_UPDATE_POOL
        reply = await self._send(
            "PUT", f"/pools/{pool_id}", kind=kind, body=orjson.dumps(pool), call=call, field_prefix="pool."
        )
        return dict(reply.data)

    async def pool_action(self, pool_id: str, action: str, call: Call) -> dict[str, Any] | None:
        """`POST /pools/{id}/{open|close|close-for-update|archive}`: the Operation, or None on 204."""
        reply = await self._send("POST", f"/pools/{pool_id}/{action}", kind=KIND_POOL_ACTION, call=call)
        return None if reply.status == 204 or not reply.data else dict(reply.data)

    # ---- the choke point -------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        kind: str,
        call: Call,
        tasks: int = 1,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        settle: Callable[[], Awaitable[Reply | None]] | None = None,
        field_prefix: str = "",
        resend_after_send: bool = True,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> Reply:
        """Send one logical request: rate limit, deadline, retries, error mapping.

        After a failure that Toloka may have acted on (sent without an answer, or a 5xx),
        `settle` is asked first; a request that must not be repeated blind
        (`resend_after_send=False`) then fails as OutcomeUnknown instead of being re-sent.
        Any other error raised here means Toloka did not act on such a request.
        """
        attempt = 0
        while True:
            attempt += 1
            await self._limiter.acquire(kind, tasks=tasks, call=call)
            if before_send is not None and attempt == 1:
                await before_send()
            outcome = await self._attempt(
                method, path, kind=kind, call=call, params=params, body=body,
                field_prefix=field_prefix, attempt=attempt, cut_at_deadline=resend_after_send,
            )  # fmt: skip
            if isinstance(outcome, Reply):
                self.retry_budget.on_success()
                return outcome
            self.retry_budget.on_failure()
            failure, may_have_acted = outcome
            if may_have_acted and not resend_after_send:
                raise _ambiguous(failure)
            if call.expired():
                raise errors.DeadlineExceeded(
                    "the call's deadline passed before Toloka answered",
                    metadata={"attempts": str(attempt), **failure.metadata},
                )
            if may_have_acted and settle is not None:
                settled = await settle()
                if settled is not None:
                    return settled
            delay = self._retry_delay(failure, attempt, call)
            if self._metrics is not None:
                self._metrics.toloka_retries.labels(kind).inc()
            await self._sleep(delay)

    async def _attempt(
        self,
        method: str,
        path: str,
        *,
        kind: str,
        call: Call,
        params: Mapping[str, str] | None,
        body: bytes | None,
        field_prefix: str,
        attempt: int,
        cut_at_deadline: bool,
    ) -> Reply | tuple[errors.GatewayError, bool]:
        """One HTTP exchange: a Reply, or a retryable failure and whether Toloka may have acted on it.

        Failures that no retry can fix are raised here.
        """
        timeout = self._attempt_timeout(call, cut_at_deadline)
        sent_at = time.perf_counter()
        try:
            status, data, headers = await self._request(method, path, params, body, timeout)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._observe(kind, "network", sent_at)
            sent = not isinstance(exc, aiohttp.ClientConnectorError)
            log.debug("toloka %s %s: %s", method, path, type(exc).__name__)
            return network_error(sent=sent), sent
        self._observe(kind, str(status), sent_at)
        if status < 300:
            return Reply(status, data)
        retry_after = parse_retry_after(headers.get("Retry-After"))
        failure = error_from_response(status, data, retry_after=retry_after, field_prefix=field_prefix)
        if failure.toloka_request_id:
            call.toloka_request_ids.append(failure.toloka_request_id)
        if status == 429:
            await self._limiter.report_throttled(retry_after or DEFAULT_THROTTLE_S, kind=kind)
        if status not in RETRYABLE_STATUSES:
            self.retry_budget.on_success()  # a definite answer: Toloka is up
            raise failure
        return failure, status >= 500  # 408 and 429: Toloka did not act on it

    def _retry_delay(self, failure: errors.GatewayError, attempt: int, call: Call) -> float:
        """How long to wait before the next attempt, or raise `failure` when there should be none.

        No retry when attempts are used up, when Toloka asks for a longer pause than the
        gateway waits within one call (the caller gets RetryInfo instead), or when the pause
        would outlast the caller's deadline.
        """
        if attempt >= self._settings.max_attempts:
            raise failure
        if not self.retry_budget.allows_retry():
            # Most recent attempts failed: retrying would multiply Toloka's trouble (and, behind a
            # mesh that retries too, multiply it again). The caller gets RetryInfo instead.
            failure.metadata["retries_throttled"] = "true"
            failure.retry_after = failure.retry_after or self._backoff(attempt, None)
            raise failure
        asked = failure.retry_after
        if asked is not None and asked > self._settings.backoff_max_s:
            raise failure
        delay = self._backoff(attempt, asked)
        left = call.remaining()
        if left is not None and delay >= left:
            failure.retry_after = failure.retry_after or delay
            raise failure
        return delay

    async def _request(
        self, method: str, path: str, params: Mapping[str, str] | None, body: bytes | None, limit_s: float
    ) -> tuple[int, Any, Mapping[str, str]]:
        if self._session is None:
            await self.start()
        assert self._session is not None
        headers = {"Content-Type": "application/json"} if body is not None else None
        # aiohttp streams large bodies from a file-like object without blocking the event loop.
        data: bytes | io.BytesIO | None = (
            io.BytesIO(body) if body is not None and len(body) > LARGE_BODY else body
        )
        url = self._base + path
        if params:
            url = f"{url}?{urlencode(params)}"
        async with self._session.request(
            method,
            URL(url, encoded=True),  # built once here; aiohttp would otherwise parse and re-encode it
            data=data,
            headers=headers,
            # aiohttp rounds a timeout above ceil_threshold (5 s) up to a whole second, which
            # would let an attempt outlive the caller's deadline: never round.
            timeout=aiohttp.ClientTimeout(total=limit_s, ceil_threshold=math.inf),
        ) as resp:
            raw = await resp.read()
            parsed: Any = None
            if raw:
                try:
                    parsed = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    parsed = None
            return resp.status, parsed, resp.headers

    def _observe(self, kind: str, outcome: str, sent_at: float) -> None:
        if self._metrics is not None:
            self._metrics.observe_toloka(kind, outcome, time.perf_counter() - sent_at)

    def _attempt_timeout(self, call: Call, cut_at_deadline: bool) -> float:
        """How long one attempt may take; nothing is sent once the caller's deadline has passed.

        An attempt that must not be repeated blind (a sync create) is not cut at the caller's
        deadline: cut, its outcome would be unknown for good. It runs to `request_timeout_s`
        while the caller is answered DEADLINE_EXCEEDED at its deadline (the dedupe hold outlives
        the caller) and its retry gets the stored outcome.
        """
        left = call.remaining()
        if left is not None and left <= 0:
            raise errors.DeadlineExceeded("the call's deadline passed before Toloka answered")
        if left is None or not cut_at_deadline:
            return self._settings.request_timeout_s
        return min(self._settings.request_timeout_s, left)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with full jitter, never shorter than Toloka's Retry-After."""
        ceiling = min(
            self._settings.backoff_max_s, self._settings.backoff_initial_s * float(2 ** (attempt - 1))
        )
        delay: float = ceiling * (0.5 + 0.5 * self._rng())
        return max(delay, retry_after or 0.0)


def _ambiguous(failure: errors.GatewayError) -> errors.OutcomeUnknown:
    """A synchronous create that Toloka may or may not have performed (stored and replayed)."""
    return errors.OutcomeUnknown(
        "Toloka may or may not have created the tasks (no definite answer to a synchronous create); "
        "it is never re-sent blind: check the pool, and if the tasks are not there send the request "
        "again with a new operation_id (or use async_mode, which Toloka performs once per id)",
        reason="TOLOKA_OUTCOME_UNKNOWN",
        toloka_code=failure.toloka_code,
        toloka_request_id=failure.toloka_request_id,
        metadata={**failure.metadata, "ambiguous": "true"},
    )
