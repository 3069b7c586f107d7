"""A plain-text progress bar on stderr: redrawn in place on a terminal, one line per change otherwise."""

from __future__ import annotations

from typing import TextIO

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb

WIDTH = 30


def status_name(value: int) -> str:
    """`RUNNING` for OPERATION_STATUS_RUNNING."""
    return pb.OperationStatus.Name(value).removeprefix("OPERATION_STATUS_")


class ProgressBar:
    """Shows an operation's progress and status as they change."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._last = ""

    def update(self, op: pb.Operation) -> None:
        """Draw the operation's state, if it changed."""
        filled = WIDTH * max(0, min(100, op.progress)) // 100
        line = f"[{'#' * filled}{'.' * (WIDTH - filled)}] {op.progress:3d}% {status_name(op.status)}"
        if line == self._last:
            return
        self._last = line
        self._stream.write(f"\r{line}" if self._tty else f"{line}\n")
        self._stream.flush()

    def close(self) -> None:
        """End the bar's line on a terminal."""
        if self._tty and self._last:
            self._stream.write("\n")
            self._stream.flush()
