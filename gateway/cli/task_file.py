"""Reading the tasks of `client create-tasks FILE`: JSON lines or one JSON array, checked before sending.

Each task is an object in the proto's JSON mapping of `Task`, which equals Toloka's task JSON for the
fields the contract mirrors (`input_values`, `overlap`, `known_solutions`, ...). A task without
`pool_id` goes into the pool named by `--pool-id`. Any problem raises TaskFileError naming the line
(JSON lines) or the array index, and nothing is sent.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, TextIO

from google.protobuf import json_format

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb

TASK_FIELDS = frozenset(f.name for f in pb.Task.DESCRIPTOR.fields)


class TaskFileError(ValueError):
    """The task file cannot be used; the message names the file and the line or index."""


@dataclass(frozen=True)
class TaskSource:
    """A task as read from the file, with where it came from (for messages)."""

    where: str
    data: Any


def _json_lines(name: str, text: str) -> list[TaskSource]:
    out: list[TaskSource] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name} line {lineno}"
        try:
            out.append(TaskSource(where, json.loads(line)))
        except json.JSONDecodeError as e:
            raise TaskFileError(f"{where}: not valid JSON: {e.msg} (column {e.colno})") from None
    return out


def _json_array(name: str, text: str) -> list[TaskSource]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        raise TaskFileError(f"{name} line {e.lineno}: not valid JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(items, list):
        raise TaskFileError(f"{name}: expected a JSON array of tasks or one task object per line")
    return [TaskSource(f"{name} [{i}]", item) for i, item in enumerate(items)]


def task_from(source: TaskSource, pool_id: str) -> pb.Task:
    """One task of the file as a `Task`; TaskFileError naming where it came from."""
    if not isinstance(source.data, dict):
        raise TaskFileError(f"{source.where}: a task must be a JSON object, got {type(source.data).__name__}")
    if not source.data.get("input_values"):
        raise TaskFileError(f"{source.where}: input_values is required (an object of the task's input data)")
    unknown = sorted(set(source.data) - TASK_FIELDS)
    if unknown:
        raise TaskFileError(
            f"{source.where}: unknown task field {unknown[0]!r} (known: {', '.join(sorted(TASK_FIELDS))})"
        )
    data = dict(source.data)
    data.setdefault("pool_id", pool_id)
    try:
        return json_format.ParseDict(data, pb.Task())
    except json_format.ParseError as e:
        raise TaskFileError(f"{source.where}: {e}") from None


def parse_tasks(text: str, *, name: str, pool_id: str) -> list[pb.Task]:
    """Every task of a JSON-lines or JSON-array text; TaskFileError on the first problem."""
    stripped = text.lstrip()
    sources = _json_array(name, text) if stripped.startswith("[") else _json_lines(name, text)
    if not sources:
        raise TaskFileError(f"{name}: no tasks (expected one JSON object per line, or a JSON array)")
    return [task_from(source, pool_id) for source in sources]


def read_text(path: str, stdin: TextIO = sys.stdin) -> tuple[str, str]:
    """The file's text and a display name; `-` reads stdin."""
    if path == "-":
        return stdin.read(), "<stdin>"
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(), path
    except OSError as e:
        raise TaskFileError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise TaskFileError(f"{path}: not UTF-8 text: {e.reason}") from None


def parse_rules(text: str, *, name: str) -> pb.GetReworkRulesResponse:
    """A `{"rules": [...]}` document in the proto's JSON mapping (what `get-rework-rules --json` prints)."""
    try:
        return json_format.Parse(text, pb.GetReworkRulesResponse())
    except json_format.ParseError as e:
        raise TaskFileError(f"{name}: {e}") from None
