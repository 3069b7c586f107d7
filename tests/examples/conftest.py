"""The examples under examples/ run as a newcomer runs them, against a real gateway and emulator."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

# The same emulator and gateway fixtures as the integration suite.
from tests.integration.conftest import emulator, gw

__all__ = ["emulator", "go_toolchain", "gw", "node_example"]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GO_TOOLS = ("go", "protoc", "protoc-gen-go", "protoc-gen-go-grpc")


@pytest.fixture(scope="session")
def node_example() -> str:
    """`node`, with examples/node's own packages installed from its lock file (`npm ci`)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("Node.js 18+ and npm are needed: apt-get install nodejs npm (bash .ci/run installs them)")
    if not (EXAMPLES / "node" / "node_modules" / "@grpc" / "grpc-js" / "package.json").exists():
        done = subprocess.run(
            [npm, "ci", "--prefix", str(EXAMPLES / "node"), "--no-audit", "--no-fund"],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            pytest.fail(f"npm ci --prefix examples/node failed:\n{done.stdout}\n{done.stderr}")
    return node


@pytest.fixture(scope="session")
def go_toolchain() -> None:
    """Go, protoc and the Go plugins from Debian (examples/go/debian-packages.txt); fails, never skips."""
    missing = [tool for tool in GO_TOOLS if shutil.which(tool) is None]
    if missing:
        packages = " ".join((EXAMPLES / "go" / "debian-packages.txt").read_text().split())
        pytest.fail(f"missing {', '.join(missing)}: apt-get install {packages} (bash .ci/run installs them)")
