"""`make run` from a fresh clone, as a newcomer runs it: a wrong Python first, then the right one.

One test on purpose (it builds a venv): an older Python fails at once, naming the fix, and leaves nothing
behind; a .venv an older Python made (what older Makefiles left) is made anew; the right Python serves
within 60 s from a venv without dev tools, its first lines saying where; `make clean` then leaves exactly
the files of the clone. pip's own cache is shared with the machine, so only the first run downloads.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.gateway_harness import GatewayProcess
from tests.support.redis_servers import free_port

ROOT = Path(__file__).resolve().parents[2]
DEV_TOOLS = {"mypy", "ruff", "pytest", "grpcio-tools", "hypothesis", "kubernetes-validate", "helm-python-sdk"}
SERVING_WITHIN_S = 60.0


STAND_IN = """#!/bin/sh
# Answers `--version` as Python 3.9 does and fails anything else, as 3.9 fails this project's checks.
case "$1" in --version|-V) echo "Python 3.9.18"; exit 0;; esac
exit 1
"""


def older_python(tmp_path: Path) -> str:
    """A real Python older than 3.11 when this machine has one, else a stand-in that answers as 3.9 does."""
    candidates = [shutil.which(f"python3.{minor}") for minor in (10, 9, 8)]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.[89]*/bin/python3")))
    for candidate in candidates:
        if (
            candidate
            and subprocess.run([candidate, "--version"], capture_output=True, check=False).returncode == 0
        ):
            return candidate
    stand_in = tmp_path / "python3.9"
    stand_in.write_text(STAND_IN)
    stand_in.chmod(0o755)
    return str(stand_in)


def venv_made_by(python: str, venv: Path) -> None:
    """The .venv an older Makefile left: made by `python` (a real one, or the stand-in put in its place)."""
    real = subprocess.run([python, "-c", "import venv"], capture_output=True, check=False).returncode == 0
    subprocess.run([python if real else right_python(), "-m", "venv", str(venv)], check=True, timeout=60)
    if not real:
        for link in ("python", "python3"):
            (venv / "bin" / link).unlink()
            (venv / "bin" / link).symlink_to(python)


def copy_checkout(dest: Path) -> set[str]:
    """The files git knows (tracked, or new and not ignored), as a fresh clone of this working tree has them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    files = {name for name in listed if name and (ROOT / name).is_file()}
    for name in files:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    return files


def tree(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file() or p.is_symlink()}


def make_env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TOLOKA_API_KEY", "TOLOKA_URL", "REDIS_URL")}
    env.pop("VIRTUAL_ENV", None)
    env.pop("MAKEFLAGS", None)
    return {**env, "GATEWAY_LISTEN": f"127.0.0.1:{port}", "GATEWAY_SHUTDOWN_DELAY": "0s"}


def right_python() -> str:
    base = getattr(sys, "_base_executable", sys.executable)
    return str(base)


def wrong_python_fails_fast(clone: Path, old: str, env: dict[str, str]) -> None:
    started = time.monotonic()
    done = subprocess.run(
        ["make", "run", f"PYTHON={old}"], cwd=clone, env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert time.monotonic() - started < 5
    assert "needs Python 3.11 or newer" in done.stderr and "PYTHON=python3.11" in done.stderr, done.stderr
    assert not (clone / ".venv").exists()


async def serve_with_make_run(clone: Path, env: dict[str, str], port: int, log: Path) -> float:
    """`make run` until the gateway serves; returns the seconds it took, then stops it with SIGTERM."""
    started = time.monotonic()
    with log.open("wb") as out:
        make = subprocess.Popen(
            ["make", "run", f"PYTHON={right_python()}"], cwd=clone, env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    probe = GatewayProcess(env={}, port=port, process=make, log_path=log)
    try:
        await probe.wait_serving(within_s=SERVING_WITHIN_S)
        return time.monotonic() - started
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        await asyncio.to_thread(make.wait, 30)


def installed(clone: Path) -> set[str]:
    listed = subprocess.run(
        [str(clone / ".venv/bin/python"), "-m", "pip", "list", "--format=json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {p["name"].lower() for p in json.loads(listed)}


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_make_run_from_a_fresh_clone_after_a_wrong_python(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    clone.mkdir()
    files = copy_checkout(clone)
    port = free_port()
    env = make_env(port)
    old = older_python(tmp_path)

    wrong_python_fails_fast(clone, old, env)
    venv_made_by(old, clone / ".venv")
    log = tmp_path / "make-run.log"
    took = await serve_with_make_run(clone, env, port, log)

    output = log.read_text(errors="replace")
    assert took < SERVING_WITHIN_S
    assert "is unusable (older Python or half-made); making it anew" in output
    assert "WARNING" not in output and "Successfully installed" not in output, output  # quiet
    gateway_lines = [json.loads(line)["msg"] for line in output.splitlines() if line.startswith("{")]
    assert gateway_lines[0].startswith(f"toloka-gateway serving gRPC on 127.0.0.1:{port}"), output
    assert "seeded pools: 1 CLOSED" in gateway_lines[1]
    assert not DEV_TOOLS & installed(clone)
    assert "toloka-gateway" in installed(clone)

    subprocess.run(["make", "clean"], cwd=clone, env=env, capture_output=True, check=True, timeout=60)
    assert tree(clone) == files
