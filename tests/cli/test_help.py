"""Every command's `--help`: a description, an example, and the variables it reads (snapshots, 100 columns)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.cli.snapshot import assert_snapshot

COMMANDS = {
    "toloka-gateway": [],
    "serve": ["serve"],
    "emulator": ["emulator"],
    "client": ["client"],
    "create-tasks": ["client", "create-tasks"],
    "import-tasks": ["client", "import-tasks"],
    "wait": ["client", "wait"],
    "get-rework-rules": ["client", "get-rework-rules"],
    "set-rework-rules": ["client", "set-rework-rules"],
    "quota": ["client", "quota"],
}
# What each command's help must name besides a description: the variables it reads.
VARIABLES = {
    "serve": ("TOLOKA_API_KEY", "TOLOKA_URL", "REDIS_URL", "GATEWAY_LISTEN", "GATEWAY_CONFIG"),
    "emulator": ("TOLOKA_URL",),
    "client": ("GATEWAY_TARGET", "GATEWAY_CALLER", "GATEWAY_TOKEN"),
    "create-tasks": ("GATEWAY_TARGET", "GATEWAY_CALLER", "GATEWAY_TOKEN"),
    "import-tasks": ("GATEWAY_TARGET", "GATEWAY_CALLER", "GATEWAY_TOKEN"),
    "wait": ("GATEWAY_TARGET", "GATEWAY_CALLER", "GATEWAY_TOKEN"),
    "get-rework-rules": ("GATEWAY_TARGET", "GATEWAY_CALLER", "GATEWAY_TOKEN"),
    "set-rework-rules": ("GATEWAY_TARGET", "GATEWAY_CALLER", "GATEWAY_TOKEN"),
    "quota": ("GATEWAY_TARGET", "GATEWAY_CALLER", "GATEWAY_TOKEN"),
}


def help_of(args: list[str]) -> str:
    env = {**os.environ, "COLUMNS": "100"}
    for name in ("GATEWAY_TARGET", "GATEWAY_CALLER", "GATEWAY_TOKEN"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *args, "--help"], capture_output=True, text=True, env=env, timeout=30,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_matches_its_snapshot(name: str) -> None:
    assert_snapshot(f"help-{name}.txt", help_of(COMMANDS[name]))


@pytest.mark.parametrize("name", sorted(VARIABLES))
def test_help_has_a_description_an_example_and_the_variables_it_reads(name: str) -> None:
    text = help_of(COMMANDS[name])
    usage, description = text.split("\n\n")[:2]
    assert usage.startswith("usage: ")
    assert not description.startswith(("options:", "positional arguments:")), "no description"
    assert "example" in text
    example_lines = [
        line for line in text.splitlines() if line.lstrip().startswith(("toloka-gateway ", "echo "))
    ]
    assert example_lines, "no example command"
    for variable in VARIABLES[name]:
        assert variable in text, f"{name} --help does not name {variable}"


def test_subcommand_help_names_the_tls_flags_once_without_their_descriptions() -> None:
    text = help_of(["client", "wait"])
    client = help_of(["client"])

    assert "TLS (any of these makes the channel TLS)" not in text
    assert "TLS (any of these makes the channel TLS)" in client
    assert text.count("--tls-ca") == 1


def test_emulator_help_lists_the_pools_a_fresh_emulator_holds() -> None:
    from gateway.emulator.state import EmulatorState

    text = help_of(["emulator"])
    state = EmulatorState()

    for pool_id, pool in state.pools.items():
        assert f"\n  {pool_id} {pool['status']}" in text
    assert "POST reset" in text and "/_emulator/" in text
