"""`toloka-gateway emulator` as a process: it says where it serves, and takes a crowd config file."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path


def test_emulator_command_loads_the_crowd_config_file_it_is_given(tmp_path: Path) -> None:
    config = tmp_path / "crowd.json"
    config.write_text(json.dumps({"seed": 4242, "defaults": {"performers": 7}}))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--crowd-config",
            str(config),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed once it serves
        assert first.startswith("toloka emulator serving http://127.0.0.1:"), first
        url = first.split()[3]
        with urllib.request.urlopen(f"{url}/_emulator/crowd", timeout=10) as reply:
            crowd = json.loads(reply.read())
        assert crowd["seed"] == 4242 and crowd["defaults"]["performers"] == 7
    finally:
        proc.terminate()
        proc.communicate(timeout=10)  # also closes its stdout
