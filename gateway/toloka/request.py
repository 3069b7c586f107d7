"""One Toloka request as a value: what to send, what it costs, and whether it may be repeated.

Every endpoint method of `TolokaClient` builds a `TolokaRequest` and hands it to `_send`, so the
choke point reads everything it needs (rate-limit kind and cost, the body, the idempotency rules)
from one typed value instead of a long parameter list.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

if TYPE_CHECKING:
    from gateway.toloka.relay import Relayed


@dataclass(frozen=True)
class Reply:
    """A 2xx answer: status and parsed JSON body (None for an empty body).

    A relayed request's answer (`TolokaRequest.relay`) has `relayed` instead of `data`: any status
    but a retryable one, its body unread when 2xx; the caller must `release()` it.
    """

    status: int
    data: Any
    relayed: Relayed | None = None


Settle = Callable[[], Awaitable[Reply | None]]
BeforeSend = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Idempotency:
    """Whether a request may be re-sent after Toloka may have acted on it, and the hooks around that.

    A failure Toloka may have acted on is one sent without an answer, or a 5xx. After such a failure
    `settle` (when given) is asked first: a Reply from it is the request's answer. A request with
    `resend_after_acted=False` (a synchronous create: Toloka does not dedupe it) then fails as
    OutcomeUnknown instead of being re-sent, and its attempts are not cut at the caller's deadline
    (cut, its outcome would be unknown for good). `before_send` runs once, after the rate limit
    admitted the first attempt and right before it leaves (a dedupe claim marks itself sent).
    """

    resend_after_acted: bool = True
    settle: Settle | None = None
    before_send: BeforeSend | None = None


REPEATABLE = Idempotency()


@dataclass(frozen=True, kw_only=True)
class TolokaRequest:
    """One logical request to Toloka's `/api/v1`, however many attempts it takes."""

    kind: str  # the rate limiter's request kind (settings.KIND_*)
    method: str
    path: str  # under /api/v1, e.g. "/pools/1"
    query: Mapping[str, str] | None = None
    body: bytes | None = None  # JSON, already serialised
    cost: int = 1  # tasks carried, for limits counted in tasks
    field_prefix: str = ""  # prefixed to the paths of Toloka's validation violations
    idempotency: Idempotency = field(default=REPEATABLE)
    # Relay the answer as it came (the REST front): the body is not parsed, a 2xx body is streamed,
    # and a definite refusal (4xx but 401 and the retryable ones) is an answer, not an error.
    relay: bool = False

    @property
    def cut_at_deadline(self) -> bool:
        """Whether an attempt is cut at the caller's deadline (not for a request never re-sent blind)."""
        return self.idempotency.resend_after_acted

    def url(self, base: str) -> str:
        """The full URL under `base` (the `/api/v1` root), query encoded once."""
        url = base + self.path
        return f"{url}?{urlencode(self.query)}" if self.query else url
