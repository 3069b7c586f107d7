"""What the client concludes from a failure, built in the error map like every HTTP answer."""

from __future__ import annotations

from gateway import errors
from gateway.toloka import error_map


def server_error() -> errors.GatewayError:
    return error_map.error_from_response(
        503, {"code": "REMOTE_SERVICE_UNAVAILABLE", "request_id": "r-1", "message": "down"}, retry_after=None
    )


def test_unknown_outcome_keeps_toloka_code_and_request_id_when_a_sync_create_got_no_answer() -> None:
    unknown = error_map.outcome_unknown(server_error())
    assert isinstance(unknown, errors.OutcomeUnknown) and unknown.definitive
    assert unknown.reason == "TOLOKA_OUTCOME_UNKNOWN"
    assert (unknown.toloka_code, unknown.toloka_request_id) == ("REMOTE_SERVICE_UNAVAILABLE", "r-1")
    assert unknown.metadata == {"http_status": "503", "ambiguous": "true"}
    assert unknown.retry_after is None  # never a hint to retry: it is never re-sent


def test_unknown_outcome_is_marked_ambiguous_when_the_connection_was_lost_after_sending() -> None:
    unknown = error_map.outcome_unknown(error_map.network_error(sent=True))
    assert unknown.metadata == {"ambiguous": "true"}


def test_deadline_error_names_attempts_and_the_last_failure_when_retries_ran_out_of_time() -> None:
    late = error_map.deadline_exceeded(server_error(), attempts=3)
    assert isinstance(late, errors.DeadlineExceeded)
    assert late.metadata == {"attempts": "3", "http_status": "503"}
    assert error_map.deadline_exceeded().metadata == {}


def test_operation_already_exists_is_recognised_only_when_it_is_toloka_409_with_that_code() -> None:
    conflict = error_map.error_from_response(
        409, {"code": "OPERATION_ALREADY_EXISTS", "request_id": "r-2", "message": "exists"}, retry_after=None
    )
    other = error_map.error_from_response(409, {"code": "CONFLICT_STATE"}, retry_after=None)
    assert error_map.is_operation_already_exists(conflict)
    assert not error_map.is_operation_already_exists(other)
    assert not error_map.is_operation_already_exists(error_map.outcome_unknown(conflict))


def test_already_performed_carries_the_conflict_when_a_sync_result_cannot_be_read_back() -> None:
    conflict = error_map.error_from_response(
        409, {"code": "OPERATION_ALREADY_EXISTS", "request_id": "r-2"}, retry_after=None
    )
    done = error_map.already_performed("op-1", conflict)
    assert isinstance(done, errors.FailedPrecondition) and not done.definitive
    assert done.reason == "OPERATION_ALREADY_PERFORMED"
    assert (done.toloka_code, done.toloka_request_id) == ("OPERATION_ALREADY_EXISTS", "r-2")
    assert "op-1" in done.message
