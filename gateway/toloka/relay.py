"""`Relayed`: a Toloka answer handed to a caller as it came, for the REST front's passthrough.

A large 2xx body (or one of unknown length) stays in the connection and is read chunk by chunk while
the caller is written to, so a 50 MB page is never held whole; a small one is read at once. A non-2xx
body is small and read at once (the retry rules and the
error map need it); the gateway's key is blanked out of it, since Toloka may echo request headers.
Headers that concern one connection only (hop-by-hop), and those the gateway sets or rewrites, are
not relayed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from gateway.toloka.http1 import Response

REDACTED = b"<redacted>"
# RFC 9110 7.6.1 hop-by-hop headers, and the ones the relay recomputes: the body is re-framed
# (its length; a content coding, had Toloka used one despite `Accept-Encoding: identity`, is relayed
# with the body as it came), and `Retry-After` is never relayed because toloka-kit 1.2.3 crashes on
# a 429 that carries one (the gateway's own 429 says it in the body instead).
NOT_RELAYED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "retry-after",
        "server",
        "date",
        "set-cookie",
    }
)


def end_to_end_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers worth relaying: no hop-by-hop ones, nor those a `Connection` header names."""
    connection = headers.get("Connection")
    named = NOT_RELAYED
    if connection:
        named = NOT_RELAYED | {h.strip().lower() for h in connection.split(",")}
    return {k: v for k, v in headers.items() if k.lower() not in named}


def redact(body: bytes, secrets: tuple[bytes, ...]) -> bytes:
    """`body` with every secret blanked out."""
    for secret in secrets:
        if secret and secret in body:
            body = body.replace(secret, REDACTED)
    return body


@dataclass
class Relayed:
    """One Toloka answer to relay: status, end-to-end headers, and the body (read or still streaming)."""

    status: int
    headers: dict[str, str]
    body: bytes | None = None  # read already (a non-2xx answer)
    response: Response | None = field(default=None, repr=False)  # still streaming
    read_timeout_s: float | None = None  # bounds each wait for more of a streaming body

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, chunk by chunk, as it arrives."""
        if self.body is not None:
            if self.body:
                yield self.body
            return
        if self.response is not None:
            async for chunk in self.response.chunks(wait_s=self.read_timeout_s):
                yield chunk

    def release(self) -> None:
        """Give the connection back (or close it when the body was not read to the end)."""
        if self.response is not None:
            self.response.release()
            self.response = None
