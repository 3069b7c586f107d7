"""Wire helpers shared by the emulator's handlers: Toloka error bodies, JSON responses, dates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

JSON = dict[str, Any]

_JSON_CT = "application/json"


class ApiError(Exception):
    """A Toloka-shaped error: HTTP status plus `{request_id, code, message, payload?}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        payload: Any = None,
        *,
        headers: dict[str, str] | None = None,
        empty_body: bool = False,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.payload = payload
        self.headers = headers
        self.empty_body = empty_body

    def to_response(self) -> web.Response:
        """Render as an aiohttp response (an empty body only where Toloka documents one)."""
        if self.empty_body:
            return web.Response(status=self.status, headers=self.headers)
        return json_response(error_body(self.code, self.message, self.payload), self.status, self.headers)


def error_body(code: str, message: str, payload: Any = None) -> JSON:
    """The JSON body of every Toloka error."""
    body: JSON = {"request_id": str(uuid.uuid4()), "code": code, "message": message}
    if payload is not None:
        body["payload"] = payload
    return body


def field_error(code: str, message: str) -> JSON:
    """One entry of a validation payload: `{code, message}`."""
    return {"code": code, "message": message}


def validation_error(payload: dict[str, Any], message: str = "Validation error") -> ApiError:
    """400 VALIDATION_ERROR with a field-path payload."""
    return ApiError(400, "VALIDATION_ERROR", message, payload)


def not_found(what: str) -> ApiError:
    """404 DOES_NOT_EXIST."""
    return ApiError(404, "DOES_NOT_EXIST", f"{what} does not exist")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response serialised with orjson."""
    return web.Response(body=orjson.dumps(body), status=status, content_type=_JSON_CT, headers=headers)


def iso(ts: float) -> str:
    """Toloka's date format: UTC, millisecond precision, no zone suffix."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def parse_bool(value: str | None, name: str, default: bool = False) -> bool:
    """Parse a lowercase `true`/`false` query parameter; anything else is a validation error."""
    if value is None:
        return default
    lowered = value.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise validation_error({name: field_error("BOOLEAN_EXPECTED", "Boolean value expected")})


def canonical_uuid(value: str) -> str | None:
    """The canonical lowercase form of an RFC 4122 UUID string, or None when malformed."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None
