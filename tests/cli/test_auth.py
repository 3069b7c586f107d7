"""`toloka-gateway client` against gateways that authenticate callers: bearer tokens and mutual TLS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.emulator.server import EmulatorServer
from tests.cli.conftest import run_cli
from tests.support.certs import CertSet, make_certs
from tests.support.gateway_harness import InProcessGateway, start_gateway, write_config

ONE_TASK = '{"input_values": {"image": "https://example.com/a.png"}}\n'
RULES = '{"rules": [{"restriction": {}, "delta": 1}]}'
PERMISSIONS = """
require_known_callers = true
[auth.callers.writer]
methods = ["CreateTasks", "WaitOperation", "GetOperation", "WatchOperation"]
pools = ["1"]
[auth.callers.admin]
methods = ["*"]
"""
WRITER_TOKEN = "tok-writer-5f2a0c"
ADMIN_TOKEN = "tok-admin-9c1b77"
# The tests must not inherit a token or target from the shell that runs them.
CLEAN_ENV = {"GATEWAY_TOKEN": ""}


def target_of(gw: InProcessGateway) -> str:
    return f"127.0.0.1:{gw.gateway.port}"


def task_posts(emulator: EmulatorServer) -> int:
    return len([r for r in emulator.state.requests if r.method == "POST" and r.path == "/api/v1/tasks"])


@pytest.fixture
async def token_gw(emulator: EmulatorServer, tmp_path: Path) -> AsyncIterator[InProcessGateway]:
    """A gateway in token mode: tokens file with a writer and an admin, only those callers admitted."""
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(f'writer = "{WRITER_TOKEN}"\nadmin = "{ADMIN_TOKEN}"\n')
    auth = f'[auth]\nmode = "token"\ntokens_file = "{tokens}"\n' + PERMISSIONS
    handle = await start_gateway(toloka_url=emulator.url, config_path=write_config(tmp_path, auth))
    yield handle
    await handle.close()


async def test_token_from_env_or_flag_authenticates_the_cli_when_token_mode(
    token_gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    args = ("create-tasks", "-", "--pool-id", "1", "--allow-defaults")
    target = target_of(token_gw)

    from_env = await run_cli(*args, target=target, stdin=ONE_TASK, env={"GATEWAY_TOKEN": WRITER_TOKEN})
    # The flag wins over the environment, also when given after the subcommand.
    from_flag = await run_cli(
        *args, "--token", WRITER_TOKEN, target=target, stdin=ONE_TASK, env={"GATEWAY_TOKEN": "stale"}
    )

    assert from_env.code == 0, from_env.err
    assert "(TASK.BATCH_CREATE)" in from_env.out
    assert from_flag.code == 0, from_flag.err
    assert task_posts(emulator) == 2


async def test_missing_or_wrong_token_is_unauthenticated_with_its_reason_when_token_mode(
    token_gw: InProcessGateway, emulator: EmulatorServer
) -> None:
    args = ("create-tasks", "-", "--pool-id", "1", "--allow-defaults")
    target = target_of(token_gw)

    # The caller id alone proves nothing in token mode.
    missing = await run_cli(*args, "--caller", "writer", target=target, stdin=ONE_TASK, env=CLEAN_ENV)
    wrong = await run_cli(*args, "--token", "tok-guessed", target=target, stdin=ONE_TASK, env=CLEAN_ENV)

    assert missing.code == 1
    assert "UNAUTHENTICATED: " in missing.err
    assert "reason: MISSING_BEARER_TOKEN (domain toloka-gateway)" in missing.err
    assert wrong.code == 1
    assert "reason: INVALID_BEARER_TOKEN" in wrong.err
    assert "tok-guessed" not in wrong.err
    assert task_posts(emulator) == 0


async def test_token_names_the_caller_whose_permissions_apply_when_token_mode(
    token_gw: InProcessGateway, emulator: EmulatorServer, tmp_path: Path
) -> None:
    target = target_of(token_gw)
    rules = tmp_path / "rules.json"
    rules.write_text(RULES)

    # --caller admin is ignored: the writer's token makes this call the writer's.
    denied = await run_cli(
        "set-rework-rules", "1", str(rules), "--caller", "admin", "--token", WRITER_TOKEN, target=target
    )
    other_pool = await run_cli(
        "create-tasks", "-", "--pool-id", "4", "--allow-defaults", "--token", WRITER_TOKEN,
        target=target, stdin=ONE_TASK,
    )  # fmt: skip
    allowed = await run_cli("set-rework-rules", "1", str(rules), "--token", ADMIN_TOKEN, target=target)

    assert denied.code == 1
    assert "PERMISSION_DENIED: " in denied.err
    assert "reason: METHOD_NOT_ALLOWED" in denied.err
    assert "caller: writer" in denied.err and "method: SetReworkRules" in denied.err
    assert other_pool.code == 1
    assert "reason: POOL_NOT_ALLOWED" in other_pool.err and "pools: 4" in other_pool.err
    assert task_posts(emulator) == 0
    assert allowed.code == 0, allowed.err
    assert "pool 1: changed" in allowed.out


@pytest.fixture
def certs(tmp_path: Path) -> CertSet:
    return make_certs(tmp_path / "pki", ("writer", "stranger"))


@pytest.fixture
async def mtls_gw(
    emulator: EmulatorServer, tmp_path: Path, certs: CertSet
) -> AsyncIterator[InProcessGateway]:
    auth = (
        f'[auth]\nmode = "mtls"\ntls_cert_file = "{certs.server_cert}"\n'
        f'tls_key_file = "{certs.server_key}"\ntls_client_ca_file = "{certs.ca}"\n' + PERMISSIONS
    )
    handle = await start_gateway(toloka_url=emulator.url, config_path=write_config(tmp_path, auth))
    yield handle
    await handle.close()


async def test_client_certificate_authenticates_the_cli_when_mtls_mode(
    mtls_gw: InProcessGateway, emulator: EmulatorServer, certs: CertSet
) -> None:
    def tls(cn: str) -> tuple[str, ...]:
        cert, key = certs.clients[cn]
        return ("--tls-ca", str(certs.ca), "--tls-cert", str(cert), "--tls-key", str(key))

    args = ("create-tasks", "-", "--pool-id", "1", "--allow-defaults")
    target = target_of(mtls_gw)

    writer = await run_cli(*args, *tls("writer"), target=target, stdin=ONE_TASK)
    stranger = await run_cli(*args, *tls("stranger"), target=target, stdin=ONE_TASK)
    no_client_cert = await run_cli(
        *args, "--tls-ca", str(certs.ca), "--timeout", "5", target=target, stdin=ONE_TASK
    )
    plaintext = await run_cli(*args, "--timeout", "5", target=target, stdin=ONE_TASK)
    # Reached by another name than the certificate's (127.0.0.1 / localhost): --tls-server-name.
    renamed = await run_cli(
        *args, *tls("writer"), "--tls-server-name", "localhost",
        target=f"localhost:{mtls_gw.gateway.port}", stdin=ONE_TASK,
    )  # fmt: skip

    assert writer.code == 0, writer.err
    assert "(TASK.BATCH_CREATE)" in writer.out
    assert stranger.code == 1
    assert "reason: UNKNOWN_CALLER" in stranger.err
    for refused in (no_client_cert, plaintext):  # the handshake fails: no call reaches the gateway
        assert refused.code == 1
        assert "UNAVAILABLE: " in refused.err
    assert renamed.code == 0, renamed.err
    assert task_posts(emulator) == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--tls-cert", "client.pem"), "--tls-cert and --tls-key go together"),
        (("--tls-key", "client.key"), "--tls-cert and --tls-key go together"),
        (("--tls-ca", "/nonexistent/ca.pem"), "--tls-ca: cannot read /nonexistent/ca.pem"),
        (("--token", "two words"), "must not contain whitespace"),
    ],
)
async def test_bad_connection_options_are_usage_errors_and_send_nothing(
    emulator: EmulatorServer, options: tuple[str, ...], message: str
) -> None:
    # Nothing listens on the target: a usage error must come before any connection attempt.
    result = await run_cli("wait", "3f1c2a4e-8d6b-4c1f-9a3e-2b7d5e6f8a90", *options, target="127.0.0.1:9")

    assert result.code == 2, result.err
    assert message in result.err
    assert result.out == ""


async def test_help_documents_the_auth_options_without_showing_the_token() -> None:
    env = {"GATEWAY_TOKEN": "tok-secret-from-env"}
    result = await run_cli("wait", "--help", target="127.0.0.1:9", env=env)

    assert result.code == 0
    for option in ("--token", "GATEWAY_TOKEN", "--tls-ca", "--tls-cert", "--tls-key", "--tls-server-name"):
        assert option in result.out
    assert "tok-secret-from-env" not in result.out
