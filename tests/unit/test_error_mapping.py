"""Toloka answers -> domain errors -> gRPC statuses with google.rpc details."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2

from gateway import errors
from gateway.rpc.status import grpc_code, to_status
from gateway.toloka.client import authorization_header, parse_retry_after
from gateway.toloka.error_map import error_from_response


def body(code: str, **kw: object) -> dict[str, object]:
    return {"request_id": "rid-1", "code": code, "message": "msg", **kw}


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, "VALIDATION_ERROR", grpc.StatusCode.INVALID_ARGUMENT),
        (401, "AUTHENTICATION_ERROR", grpc.StatusCode.INTERNAL),
        (403, "ACCESS_DENIED", grpc.StatusCode.PERMISSION_DENIED),
        (404, "DOES_NOT_EXIST", grpc.StatusCode.NOT_FOUND),
        (409, "INAPPROPRIATE_STATUS", grpc.StatusCode.FAILED_PRECONDITION),
        (413, "ENTITY_TOO_LARGE", grpc.StatusCode.INVALID_ARGUMENT),
        (429, "TOO_MANY_REQUESTS", grpc.StatusCode.RESOURCE_EXHAUSTED),
        (400, "TASKS_CREATION_DOES_NOT_FIT_QUOTA", grpc.StatusCode.RESOURCE_EXHAUSTED),
        (500, "INTERNAL_ERROR", grpc.StatusCode.UNAVAILABLE),
        (503, "REMOTE_SERVICE_UNAVAILABLE", grpc.StatusCode.UNAVAILABLE),
        (504, "HTTP_504", grpc.StatusCode.UNAVAILABLE),
        (415, "UNSUPPORTED_MEDIA_TYPE", grpc.StatusCode.INTERNAL),
    ],
)
def test_toloka_errors_map_to_grpc_codes_when_answered(
    status: int, code: str, expected: grpc.StatusCode
) -> None:
    error = error_from_response(status, body(code), retry_after=None)
    assert grpc_code(error) == expected
    info = error_details_pb2.ErrorInfo()
    assert to_status(error).details[0].Unpack(info)
    assert info.metadata["toloka_code"] == code and info.metadata["toloka_request_id"] == "rid-1"


def test_our_rejected_key_is_not_unauthenticated_when_toloka_says_401() -> None:
    error = error_from_response(401, body("AUTHENTICATION_ERROR"), retry_after=None)
    assert grpc_code(error) != grpc.StatusCode.UNAUTHENTICATED
    assert error.reason == "TOLOKA_CREDENTIALS_REJECTED"


def test_validation_payload_becomes_field_violations_when_per_index() -> None:
    payload = {"2": {"input_values.image": {"code": "VALUE_REQUIRED", "message": "must be present"}}}
    error = error_from_response(
        400, body("VALIDATION_ERROR", payload=payload), retry_after=None, field_prefix="tasks"
    )
    status = to_status(error)
    bad = error_details_pb2.BadRequest()
    assert status.details[1].Unpack(bad)
    [v] = bad.field_violations
    assert (v.field, v.reason, v.description) == (
        "tasks[2].input_values.image",
        "VALUE_REQUIRED",
        "must be present",
    )


def test_rate_limit_carries_retry_info_and_quota_failure_when_toloka_throttles() -> None:
    error = error_from_response(429, body("TOO_MANY_REQUESTS", payload={"interval": "MIN"}), retry_after=2.5)
    status = to_status(error)
    kinds = [d.TypeName() for d in status.details]
    assert kinds == ["google.rpc.ErrorInfo", "google.rpc.RetryInfo", "google.rpc.QuotaFailure"]
    retry = error_details_pb2.RetryInfo()
    status.details[1].Unpack(retry)
    assert retry.retry_delay.seconds == 2 and retry.retry_delay.nanos == 500_000_000


def test_errors_round_trip_through_their_stored_form_when_definitive() -> None:
    error = errors.InvalidArgument("bad", violations=[errors.FieldViolation("tasks", "empty", "REQUIRED")])
    again = errors.GatewayError.from_dict(error.to_dict())
    assert type(again) is errors.InvalidArgument and again.violations == error.violations


@pytest.mark.parametrize(
    ("secret", "header"),
    [
        ("y0_AgAAAAAAxxxxxxxxxxxxxxxxxxxxxxxxxxx", "OAuth y0_AgAAAAAAxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
        ("abcdefghijklmnopqrstuv.abc.def", "ApiKey abcdefghijklmnopqrstuv.abc.def"),
        ("ApiKey already", "ApiKey already"),
    ],
)
def test_authorization_scheme_follows_the_sdk_rule_when_given_a_secret(secret: str, header: str) -> None:
    assert authorization_header(secret) == header


def test_retry_after_parses_seconds_and_dates_when_present() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None


def test_refusal_that_can_never_fit_has_no_retry_info_when_retry_after_is_unknown() -> None:
    error = errors.RateLimited(
        "a request costing 3 can never fit", quota=[errors.QuotaViolation("caller:a/tiny", "capacity 2")]
    )
    kinds = [d.TypeName() for d in to_status(error).details]
    assert kinds == ["google.rpc.ErrorInfo", "google.rpc.QuotaFailure"]
