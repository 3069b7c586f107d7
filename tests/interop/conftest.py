"""Node.js for the interop test: `node`, and the libraries pinned in tools/node (installed by `npm ci`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

# The same emulator and gateway fixtures as the integration suite.
from tests.integration.conftest import emulator, gw

__all__ = ["emulator", "gw", "node"]

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools" / "node"
NEEDED = ("@grpc/grpc-js", "@grpc/proto-loader", "protobufjs")


@pytest.fixture(scope="session")
def node() -> str:
    """The `node` binary, with tools/node's packages installed; fails (never skips) when missing."""
    node_bin = shutil.which("node")
    npm_bin = shutil.which("npm")
    if node_bin is None or npm_bin is None:
        pytest.fail("Node.js 18+ and npm are needed: apt-get install nodejs npm (bash .ci/run installs them)")
    if not all((TOOLS / "node_modules" / name / "package.json").exists() for name in NEEDED):
        done = subprocess.run(
            [npm_bin, "ci", "--prefix", str(TOOLS), "--no-audit", "--no-fund"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci --prefix tools/node failed:\n{done.stdout}\n{done.stderr}")
    return node_bin
