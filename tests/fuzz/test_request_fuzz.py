"""Random request bytes and random valid-ish messages against every method of a real gateway.

Whatever a caller sends, the gateway answers with a status it chose (never UNKNOWN or INTERNAL), its
details stay under 8 KiB, and it keeps serving. Bounded in time and reproducible: derandomized, a
fixed number of examples, no example database.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from tests.fuzz.conftest import ServedGateway

METADATA = (("x-caller-id", "fuzz"),)
SERVICE = "/toloka.gateway.v1.TolokaGateway/"
UNARY = ("CreateTasks", "GetOperation", "WaitOperation", "SetReworkRules", "GetReworkRules", "GetQuota")
METHODS = (*UNARY, "WatchOperation")
FORBIDDEN = (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)
MAX_DETAILS = 8 * 1024
CALL_TIMEOUT_S = 10.0

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def call(served: ServedGateway, method: str, payload: bytes) -> None:
    """Send raw bytes to a method; assert on the status if it fails."""
    try:
        if method == "WatchOperation":
            stream = served.channel.unary_stream(SERVICE + method)
            for _ in stream(payload, metadata=METADATA, timeout=CALL_TIMEOUT_S):
                pass
        else:
            served.channel.unary_unary(SERVICE + method)(payload, metadata=METADATA, timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as e:
        check_status(method, e)


def check_status(method: str, error: Any) -> None:
    code, message = error.code(), error.details() or ""
    assert code not in FORBIDDEN, f"{method} answered {code.name}: {message[:300]}"
    assert "metadata size" not in message, f"{method}: the client refused the trailer: {message[:300]}"
    details = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin", b"")
    assert len(details) < MAX_DETAILS, f"{method}: {len(details)} bytes of details"


# -- strategies ------------------------------------------------------------------------------------------

ids = st.one_of(
    st.text(max_size=40),
    st.uuids().map(str),
    st.uuids().map(lambda u: f"{u}\n"),
    st.uuids().map(lambda u: str(u).upper()),
    st.sampled_from(["1", "2", "3", "4", "2\n", " 1", "1 ", "0", "-1", "1/open", "..", "9" * 5000, "\u0661"]),
)
# Ids that name what exists (pools 1, 2, 4; operations the fuzz itself creates) more often than not, so
# messages get past validation to dedupe, the poller and the emulator.
KNOWN_OPERATIONS = [str(uuid.UUID(int=n, version=4)) for n in range(1, 6)]
pool_ids = st.one_of(st.sampled_from(["1", "2", "4"]), st.sampled_from(["1", "2", "4"]), ids)
operation_ids = st.one_of(st.sampled_from(KNOWN_OPERATIONS), st.sampled_from(KNOWN_OPERATIONS), ids)
keys = st.one_of(st.text(max_size=12), st.sampled_from(["", "k" * 8192, "a.b[0]", "\n", "é" * 300, "😀"]))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(),  # NaN and infinities included
    st.integers(-(2**60), 2**60),
    st.text(max_size=30),
    st.sampled_from([math.nan, math.inf, -math.inf, 2.0**53 + 1, 1e308]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=12,
)


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": math.nan}
    for _ in range(depth):
        value = {"a": value}
    return value


deep = st.sampled_from([10, 30, 45, 60, 120]).map(nested)  # the parser's limit lies in between
odd_structs = st.dictionaries(keys, st.one_of(json_values, json_values, json_values, deep), max_size=4)
plain_structs = st.dictionaries(
    st.text(max_size=8), st.text(max_size=20) | st.integers(-9, 9), min_size=1, max_size=3
)
structs = st.one_of(plain_structs, odd_structs)


def fill_task(draw: st.DrawFn, task: pb.Task) -> None:
    """Random fields for a task built in place (copying a message deeper than the parser allows fails)."""
    task.pool_id, task.infinite_overlap = draw(pool_ids), draw(st.sampled_from([False, False, False, True]))
    task.input_values.update(draw(structs))
    overlap = draw(st.integers(1, 5) | st.none() | st.integers(-(2**31), 2**31 - 1))
    if overlap is not None:
        task.overlap = overlap
    task.message_on_unknown_solution = draw(st.text(max_size=20))
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        solution = task.known_solutions.add()
        solution.output_values.update(draw(structs))
        weight = draw(st.none() | st.floats())
        if weight is not None:
            solution.correctness_weight = weight
    task.reserved_for.extend(draw(st.just([]) | st.lists(ids, max_size=2)))
    task.traits_all_of.extend(draw(st.lists(st.text(max_size=10), max_size=2)))
    if draw(st.booleans()):
        task.localization_config.update(draw(structs))


@st.composite
def create_requests(draw: st.DrawFn) -> pb.CreateTasksRequest:
    req = pb.CreateTasksRequest(operation_id=draw(st.sampled_from(["", *KNOWN_OPERATIONS]) | operation_ids))
    for _ in range(draw(st.sampled_from([1, 1, 2, 3, 0]))):  # the first is drawn most
        fill_task(draw, req.tasks.add())
    if draw(st.booleans()):
        req.async_mode = draw(st.booleans())
    req.allow_defaults, req.open_pool, req.skip_invalid_items = draw(st.tuples(*[st.booleans()] * 3))
    return req


@st.composite
def near_valid_creates(draw: st.DrawFn) -> pb.CreateTasksRequest:
    """A valid CreateTasks with one field made odd, so most examples get past validation's first checks."""
    req = pb.CreateTasksRequest(
        operation_id=draw(st.sampled_from(KNOWN_OPERATIONS) | st.uuids(version=4).map(str))
    )
    for i in range(draw(st.integers(1, 3))):
        req.tasks.add(pool_id="1", overlap=1).input_values.update({"image": f"https://example.com/{i}.png"})
    task = req.tasks[draw(st.integers(0, len(req.tasks) - 1))]
    odd = draw(
        st.sampled_from(["input", "pool", "overlap", "solution", "text", "localization", "id", "none"])
    )
    if odd == "input":
        task.input_values.update(draw(odd_structs))
    elif odd == "pool":
        task.pool_id = draw(ids)
    elif odd == "overlap":
        task.overlap = draw(st.integers(-(2**31), 2**31 - 1))
    elif odd == "solution":
        task.known_solutions.add().output_values.update(draw(odd_structs))
    elif odd == "text":
        task.message_on_unknown_solution = draw(st.text(max_size=50) | st.just("x" * 100_000))
    elif odd == "localization":
        task.localization_config.update(draw(odd_structs))
    elif odd == "id":
        req.operation_id = draw(ids)
    req.async_mode = draw(st.booleans())
    return req


@st.composite
def wait_requests(draw: st.DrawFn) -> pb.WaitOperationRequest:
    req = pb.WaitOperationRequest(operation_id=draw(operation_ids), include_log=draw(st.booleans()))
    if draw(st.booleans()):
        req.timeout.FromNanoseconds(draw(st.integers(-(10**9), 2 * 10**8)))
    return req


@st.composite
def rework_requests(draw: st.DrawFn) -> pb.SetReworkRulesRequest:
    req = pb.SetReworkRulesRequest(
        pool_id=draw(pool_ids), refuse_if_open=draw(st.booleans()), operation_id=draw(st.just("") | ids)
    )
    for _ in range(draw(st.integers(0, 3))):
        rule = req.rules.add(delta=draw(st.integers(-(2**31), 2**31 - 1)), open_pool=draw(st.booleans()))
        trigger = draw(st.sampled_from(["skill_change", "restriction", "assessment", None]))
        if trigger == "skill_change":
            rule.skill_change.skill_id = draw(ids)
        elif trigger == "restriction":
            rule.restriction.SetInParent()
        elif trigger == "assessment":
            rule.assessment.assessment_event = draw(st.integers(-5, 10))  # unknown enum values included
        for _ in range(draw(st.integers(0, 2))):
            rule.conditions.add(
                key=draw(st.integers(-1, 5)),
                operator=draw(st.integers(-1, 8)),
                value=draw(st.integers(-(2**63), 2**63 - 1)),
            )
    return req


messages: dict[str, st.SearchStrategy[Message]] = {
    "CreateTasks": near_valid_creates() | create_requests(),
    "GetOperation": st.builds(pb.GetOperationRequest, operation_id=operation_ids),
    "WaitOperation": wait_requests(),
    "WatchOperation": st.builds(pb.WatchOperationRequest, operation_id=operation_ids),
    "SetReworkRules": rework_requests(),
    "GetReworkRules": st.builds(pb.GetReworkRulesRequest, pool_id=pool_ids),
    "GetQuota": st.builds(
        pb.GetQuotaRequest,
        kind=st.text(max_size=300) | st.sampled_from(["", "create_tasks", "*", "get_pool\n", "x" * 100_000]),
    ),
}


# -- tests -----------------------------------------------------------------------------------------------


@FUZZ
@given(method=st.sampled_from(METHODS), payload=st.binary(max_size=512))
def test_random_bytes_get_a_chosen_bounded_status_when_sent_to_any_method(
    served: ServedGateway, method: str, payload: bytes
) -> None:
    call(served, method, payload)


@FUZZ
@given(data=st.data())
def test_random_messages_get_a_chosen_bounded_status_when_sent_to_any_method(
    served: ServedGateway, data: st.DataObject
) -> None:
    method = data.draw(st.sampled_from(METHODS))
    call(served, method, data.draw(messages[method]).SerializeToString())


@settings(FUZZ, max_examples=30)
@given(
    pool_id=st.sampled_from(["1", "2", "4"]),
    operation_id=st.sampled_from(KNOWN_OPERATIONS),
    suffix=st.sampled_from(["\n", "\r\n", " ", "\t", "\x00", "\u2028"]),
)
def test_ids_are_refused_when_they_end_in_whitespace(
    served: ServedGateway, pool_id: str, operation_id: str, suffix: str
) -> None:
    create = pb.CreateTasksRequest()
    create.tasks.add(pool_id=pool_id + suffix, overlap=1).input_values.update({"image": "a"})
    for method, payload in (
        ("GetReworkRules", pb.GetReworkRulesRequest(pool_id=pool_id + suffix)),
        ("GetOperation", pb.GetOperationRequest(operation_id=operation_id + suffix)),
        ("CreateTasks", create),
    ):
        try:
            served.channel.unary_unary(SERVICE + method)(
                payload.SerializeToString(), metadata=METADATA, timeout=CALL_TIMEOUT_S
            )
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, e.code(), e.details())
        else:
            raise AssertionError(f"{method} accepted an id ending in {suffix!r}")


def test_gateway_still_serves_when_the_fuzzing_is_over(served: ServedGateway) -> None:
    health = health_pb2_grpc.HealthStub(served.channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    req = pb.CreateTasksRequest(operation_id=str(uuid.uuid4()))
    req.tasks.add(pool_id="1", overlap=1).input_values.update({"image": "https://example.com/1.png"})
    reply = served.channel.unary_unary(
        SERVICE + "CreateTasks",
        request_serializer=pb.CreateTasksRequest.SerializeToString,
        response_deserializer=pb.CreateTasksResponse.FromString,
    )(req, metadata=METADATA, timeout=CALL_TIMEOUT_S)
    assert reply.operation_id == req.operation_id
