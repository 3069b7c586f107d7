"""The Envoy config docs/operating.md offers for mesh-side enforcement is one Envoy accepts."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.envoy import envoy_binary

GUIDE = Path(__file__).parents[2] / "docs" / "operating.md"
SECTION = "## Mesh-side enforcement"


def snippet() -> str:
    text = GUIDE.read_text()
    start = text.index("```yaml", text.index(SECTION)) + len("```yaml")
    return text[start : text.index("```", start)]


def test_operating_guide_envoy_snippet_passes_envoys_own_validation(tmp_path: Path) -> None:
    config = tmp_path / "egress.yaml"
    config.write_text(snippet())
    checked = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(config)],
        check=False,
        capture_output=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout.decode()[-2000:] + checked.stderr.decode()[-2000:]
    assert "envoy.filters.http.ratelimit" in snippet() and "failure_mode_deny: true" in snippet()
