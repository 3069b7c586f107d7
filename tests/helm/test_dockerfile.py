"""The Dockerfile builds through the Makefile (as CI does) and ships a slim, non-root runtime stage.

No container engine runs here, so the Dockerfile is checked as text and the Makefile target it runs
is exercised with `make -n`.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helm.conftest import REPO

DOCKERFILE = REPO / "Dockerfile"
MAKEFILE = REPO / "Makefile"


@dataclass
class Stage:
    """One FROM ... AS name block: its instructions as (KEYWORD, argument text)."""

    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [text for kw, text in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with line continuations joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest.strip(), re.IGNORECASE)
            assert match, line
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m.group(1), m.group(0)), match.group(1))
            stages.append(Stage(name=match.group(2) or str(len(stages)), base=base))
        elif not stages and keyword == "ARG":
            name, _, default = rest.partition("=")
            global_args[name.strip()] = default.strip()
        else:
            stages[-1].instructions.append((keyword, rest.strip()))
    return global_args, stages


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    _, parsed = parse_dockerfile(DOCKERFILE.read_text())
    return {s.name: s for s in parsed}


def make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):(?!=)", MAKEFILE.read_text(), re.MULTILINE))


def build_make_command(stage: Stage) -> list[str]:
    commands = [shlex.split(run) for run in stage.args("RUN") if re.match(r"make\b", run)]
    assert len(commands) == 1, "the build stage must install through exactly one make command"
    return commands[0]


def test_both_stages_use_python_311_slim_when_parsed(stages: dict[str, Stage]) -> None:
    assert list(stages) == ["build", "runtime"]
    assert {s.base for s in stages.values()} == {"python:3.11-slim"}


def test_build_stage_installs_through_a_makefile_target_when_parsed(stages: dict[str, Stage]) -> None:
    command = build_make_command(stages["build"])
    target = command[1]
    assert target in {"install", "install-runtime"}
    assert "VENV=/opt/build-venv" in command or "VENV=/opt/venv" in command
    # Whatever venv the runtime stage copies is the one the make command installs into.
    (copy,) = stages["runtime"].args("COPY")
    assert copy.startswith("--from=build ")
    source = copy.split()[1]
    assert f"RUNTIME_VENV={source}" in command or (target == "install" and f"VENV={source}" in command)


def test_makefile_target_installs_non_editable_after_codegen_when_dry_run(
    stages: dict[str, Stage], tmp_path: Path
) -> None:
    command = build_make_command(stages["build"])
    variables = [arg for arg in command[2:] if "=" in arg]
    # Dry run against throwaway venv paths: prints the recipe without installing anything.
    variables = [re.sub(r"=/opt/", f"={tmp_path}/", v) for v in variables]
    result = subprocess.run(
        ["make", "-n", "-C", str(REPO), command[1], *variables],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    out = result.stdout
    assert "pip install" in out and "-e '.[dev]'" in out, "codegen tools come from the CI install"
    assert re.search(r"make.* proto", out), "protobuf code is generated before the package is installed"
    runtime_install = [
        ln for ln in out.splitlines() if f"{tmp_path}/venv/bin/python -m pip install" in ln and " ." in ln
    ]
    assert runtime_install, out
    assert all(" -e " not in ln and "[dev]" not in ln for ln in runtime_install)


def test_runtime_stage_is_non_root_and_runs_the_gateway_when_parsed(stages: dict[str, Stage]) -> None:
    runtime = stages["runtime"]
    (user,) = runtime.args("USER")
    assert user.split(":")[0] == "10001"
    assert set(" ".join(runtime.args("EXPOSE")).split()) == {"50051", "9090"}
    assert [json.loads(e) for e in runtime.args("ENTRYPOINT")] == [["toloka-gateway"]]
    assert [json.loads(c) for c in runtime.args("CMD")] == [["serve"]]
    env = " ".join(runtime.args("ENV"))
    assert re.search(r"\bPYTHONUNBUFFERED=1\b", env)
    assert "/opt/venv/bin" in env


def test_runtime_stage_has_no_build_tools_and_no_secrets_when_parsed(stages: dict[str, Stage]) -> None:
    runtime = stages["runtime"]
    runs = " ".join(runtime.args("RUN"))
    assert not re.search(r"\b(pip|make|apt-get install|gcc|grpc_tools)\b", runs), runs
    for keyword in ("ENV", "ARG", "LABEL"):
        for text in runtime.args(keyword) + stages["build"].args(keyword):
            assert not re.search(r"API_KEY|PASSWORD|TOKEN|SECRET", text, re.IGNORECASE), text
    # Only the installed venv crosses over from the build stage; no sources, no dev venv.
    assert [c.split()[1:] for c in runtime.args("COPY")] == [["/opt/venv", "/opt/venv"]]


def test_dockerignore_keeps_local_state_out_of_the_build_context_when_read() -> None:
    ignored = {
        ln.strip()
        for ln in (REPO / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    }
    assert {".git", ".venv", "gateway/api", ".env", "**/__pycache__"} <= ignored
    assert not ignored & {"protos", "gateway", "Makefile", "pyproject.toml", "README.md"}
