"""A plain-text progress bar on stderr: redrawn in place on a terminal, one line per change otherwise."""

from __future__ import annotations

from typing import TextIO

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb

WIDTH = 30


def status_name(value: int) -> str:
    """`RUNNING` for OPERATION_STATUS_RUNNING."""
    return pb.OperationStatus.Name(value).removeprefix("OPERATION_STATUS_")


class LiveLine:
    """One line of status on a stream: redrawn in place on a terminal, one line per change otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._last = ""

    def show(self, line: str) -> None:
        """Draw `line`, if it differs from the last one drawn."""
        if line == self._last:
            return
        self._last = line
        self._stream.write(f"\r{line}" if self._tty else f"{line}\n")
        self._stream.flush()

    def close(self) -> None:
        """End the line on a terminal."""
        if self._tty and self._last:
            self._stream.write("\n")
            self._stream.flush()


def bar(done: int, total: int) -> str:
    """`[#####.....]`: `done` of `total` as WIDTH characters."""
    filled = WIDTH * max(0, min(done, total)) // total if total > 0 else 0
    return f"[{'#' * filled}{'.' * (WIDTH - filled)}]"


class ProgressBar:
    """Shows an operation's progress and status as they change."""

    def __init__(self, stream: TextIO) -> None:
        self._line = LiveLine(stream)

    def update(self, op: pb.Operation) -> None:
        """Draw the operation's state, if it changed."""
        self._line.show(f"{bar(op.progress, 100)} {op.progress:3d}% {status_name(op.status)}")

    def close(self) -> None:
        """End the bar's line on a terminal."""
        self._line.close()
