"""`make bench`: every benchmark, each reported against a baseline measured in the same run.

    python -m bench                 # all
    python -m bench throughput ...  # some (names below)

Prints one JSON object per benchmark and writes them all to bench/results/latest.json.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

BENCHMARKS = {
    "throughput": "bench.throughput",
    "http_clients": "bench.http_clients",
    "translation": "bench.translation",
    "ratelimit": "bench.ratelimit_bench",
    "dedupe": "bench.dedupe_bench",
    "poller": "bench.poller_bench",
    "emulator": "bench.emulator_bench",
    "rls": "bench.rls_bench",
    "import_tasks": "bench.import_bench",
    "rest": "bench.rest_bench",
}


def main(names: list[str]) -> int:
    """Run the named benchmarks (all when none are named)."""
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}",
            file=sys.stderr,
        )
        return 2
    results: dict[str, Any] = {}
    for name in names or list(BENCHMARKS):
        started = time.perf_counter()
        module = importlib.import_module(BENCHMARKS[name])
        result = module.run()
        result["bench_seconds"] = round(time.perf_counter() - started, 1)
        results[name] = result
        print(json.dumps({name: result}), flush=True)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
