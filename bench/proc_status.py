"""A process's memory as Linux reports it in /proc/PID/status (kB), for the benchmarks."""

from __future__ import annotations

import os
from pathlib import Path


def memory_kib(pid: int, key: str = "VmHWM") -> int:
    """`VmHWM` (peak resident set) or `VmRSS` (resident set now) of a process, in KiB; 0 if absent."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return 0


def reset_peak(pid: int) -> None:
    """Make the process's VmHWM its current resident set (clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (/proc/PID/stat), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
