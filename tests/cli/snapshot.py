"""Snapshot files under tests/cli/snapshots/: the expected text, compared exactly.

`UPDATE_SNAPSHOTS=1 make test PYTEST_ARGS=tests/cli` rewrites them from the current output; review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

SNAPSHOTS = Path(__file__).parent / "snapshots"


def assert_snapshot(name: str, actual: str) -> None:
    """`actual` equals the stored snapshot `name` (rewritten instead when UPDATE_SNAPSHOTS=1)."""
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(actual)
        return
    assert path.exists(), f"no snapshot {path.name}: run with UPDATE_SNAPSHOTS=1 once and review it"
    expected = path.read_text()
    assert actual == expected, f"{path.name} differs (UPDATE_SNAPSHOTS=1 rewrites it):\n{actual}"
