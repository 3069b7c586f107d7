"""Every channel option the gateway sets is one gRPC knows, and keepalive pings do not kill long calls.

gRPC core ignores an option name it does not know, without a word: a misspelt keepalive option left
gRPC's 5-minute minimum ping interval in force, and clients pinging every 10 s got GOAWAY
too_many_pings in the middle of long WaitOperations.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.api.toloka.gateway.v1 import gateway_pb2_grpc as pb_grpc
from gateway.cli.channel import channel_options
from gateway.emulator.state import EmulatorState
from gateway.rpc.server import server_options
from gateway.settings import ServerSettings
from tests.rpc.conftest import Start, create_request


def core_library() -> bytes:
    """gRPC core as compiled into the Python extension: every option name it reads is a C string in it."""
    from grpc._cython import cygrpc

    return Path(cygrpc.__file__).read_bytes()


def known_to_core(name: str, library: bytes) -> bool:
    """True when `name` is a NUL-terminated string in gRPC core (a name core looks up)."""
    return name.encode() + b"\0" in library


def cli_option_names() -> set[str]:
    """Every option name the CLI channel can set (all TLS options given, so none is skipped)."""
    args = argparse.Namespace(
        target="gateway:50051", tls_ca="ca.pem", tls_cert="", tls_key="", tls_server_name="gateway.test"
    )
    return {name for name, _ in channel_options(args)}


OPTION_NAMES = sorted({name for name, _ in server_options(ServerSettings())} | cli_option_names())


@pytest.fixture(scope="module")
def library() -> bytes:
    return core_library()


@pytest.mark.parametrize("name", OPTION_NAMES)
def test_option_name_is_known_to_grpc_core_when_set_by_the_server_or_the_cli(
    name: str, library: bytes
) -> None:
    assert known_to_core(name, library), f"gRPC core does not know the channel option {name!r}"


def test_option_check_refuses_a_name_when_grpc_core_does_not_know_it(library: bytes) -> None:
    # The name the server used to set: gRPC ignored it. The check above must catch such a name.
    assert not known_to_core("grpc.http2.min_recv_ping_interval_without_data_ms", library)
    assert known_to_core("grpc.http2.min_ping_interval_without_data_ms", library)


def test_min_ping_interval_comes_from_settings_when_configured() -> None:
    options = dict(server_options(ServerSettings(min_ping_interval_s=4.5)))
    assert options["grpc.http2.min_ping_interval_without_data_ms"] == 4500


@pytest.fixture
def emulator_state() -> EmulatorState:
    """Task operations that outlast any wait in these tests."""
    return EmulatorState(operation_duration_s=3600, pool_operation_duration_s=0.05)


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_long_wait_survives_keepalive_pings_when_the_client_pings_every_10s(start: Start) -> None:
    gw = await start()
    created = await gw.stub.CreateTasks(create_request(), metadata=gw.md(), timeout=10)
    # Like a mesh sidecar, the client keeps pinging however long no data flows (a gRPC client stops
    # after two pings without data unless told otherwise, which would hide the server's policy).
    options = [
        ("grpc.keepalive_time_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{gw.gateway.port}", options=options) as channel:
        started = time.monotonic()
        reply = await pb_grpc.TolokaGatewayStub(channel).WaitOperation(
            pb.WaitOperationRequest(
                operation_id=created.operation_id, timeout=duration_pb2.Duration(seconds=60)
            ),
            metadata=gw.md(),
            timeout=75,
        )
    assert not reply.done
    assert time.monotonic() - started >= 59
