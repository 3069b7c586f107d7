"""Redis over TLS with an ACL user and password: the gateway's shared state works there."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.emulator.server import EmulatorServer
from tests.support.certs import CertSet, make_certs
from tests.support.gateway_harness import start_gateway, write_config
from tests.support.redis_servers import INSTALL_HINT, free_port

USER, PASSWORD = "gateway", "acl-pass-7c1e"


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, CertSet]]:
    binary = shutil.which("redis-server")
    if not binary:
        raise RuntimeError(INSTALL_HINT)
    certs = make_certs(tmp_path / "pki", ())
    port = free_port()
    proc = subprocess.Popen(
        [
            binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--tls-cert-file", str(certs.server_cert), "--tls-key-file", str(certs.server_key),
            "--tls-ca-cert-file", str(certs.ca), "--tls-auth-clients", "no",
            "--user", "default", "off", "--user", USER, "on", f">{PASSWORD}", "~*", "&*", "+@all",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield port, certs
    finally:
        proc.kill()
        proc.wait()


async def ping_until_up(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        for _ in range(200):
            try:
                if await client.ping():
                    return
            except (OSError, aioredis.ConnectionError):
                await asyncio.sleep(0.05)  # the server process is starting; it has no readiness event
        raise AssertionError("TLS redis-server never answered")
    finally:
        await client.aclose()


@pytest.mark.parametrize("password_from", ["url", "env"])
async def test_dedupe_shares_state_when_redis_needs_tls_and_an_acl_user(
    tls_redis: tuple[int, CertSet], emulator: EmulatorServer, tmp_path: Path, password_from: str
) -> None:
    port, certs = tls_redis
    secret = f":{PASSWORD}" if password_from == "url" else ""
    url = f"rediss://{USER}{secret}@127.0.0.1:{port}/0?ssl_ca_certs={certs.ca}"
    await ping_until_up(f"rediss://{USER}:{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={certs.ca}")
    env = {"REDIS_PASSWORD": PASSWORD} if password_from == "env" else {}
    gw = await start_gateway(
        toloka_url=emulator.url, config_path=write_config(tmp_path), redis_url=url, env=env
    )
    try:
        req = pb.CreateTasksRequest(operation_id=str(uuid.uuid4()))
        req.tasks.add(pool_id="1", overlap=1).input_values.update({"image": "a"})
        first = await gw.stub.CreateTasks(req, metadata=gw.md())
        again = await gw.stub.CreateTasks(req, metadata=gw.md())
        assert not first.replayed and again.replayed
        assert not gw.gateway.degraded
        assert sum(1 for r in emulator.state.requests if r.path == "/api/v1/tasks") == 1
    finally:
        await gw.close()
