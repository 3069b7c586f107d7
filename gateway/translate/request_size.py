"""The size budget of a CreateTasks request: every field counts, and Toloka sees nothing over a bound.

Bounds (each refusal is INVALID_ARGUMENT, reason TOO_LARGE, with the size and the bound):

    input_values, all tasks            MAX_INPUT_VALUES_BYTES   1 MiB  Toloka's own limit, compact JSON
    output_values, all solutions       MAX_OUTPUT_VALUES_BYTES  4 MiB  Toloka's own limit, compact JSON
    one free field of one task         MAX_FREE_FIELD_BYTES    64 KiB  message_on_unknown_solution,
                                                                      localization_config, reserved_for,
                                                                      unavailable_for, traits_* (each)
    the free fields, all tasks         MAX_FREE_FIELDS_BYTES    4 MiB
    the JSON body sent to Toloka       MAX_BODY_BYTES          16 MiB  catches what no field bound sees:
                                                                      escapes, thousands of empty solutions

Free fields are measured as sent: text in UTF-8 bytes, a list as the sum of its strings, a Struct
in its encoded protobuf size (no conversion, so a huge one costs nothing before it is refused).
The free fields are tallied task by task and translation stops as soon as their total is over;
the JSON totals are checked after each chunk of tasks, so an oversized request stops early too.
A request of ordinary text within the field bounds stays well under MAX_BODY_BYTES (about 12 MiB of
JSON with 10,000 tasks); only escapes or masses of empty items reach it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.errors import ViolationList

MAX_INPUT_VALUES_BYTES = 1_048_576
MAX_OUTPUT_VALUES_BYTES = 4_194_304
MAX_FREE_FIELD_BYTES = 65_536
MAX_FREE_FIELDS_BYTES = 4_194_304
MAX_BODY_BYTES = 16_777_216


class OverBudget(Exception):
    """The request's free fields are over their total: stop translating, the violation is recorded."""


def text_bytes(text: str) -> int:
    """UTF-8 size of `text`; ASCII text (the common case) is measured without encoding a copy."""
    return len(text) if text.isascii() else len(text.encode())


@dataclass
class RequestTally:
    """Running sizes of one request against its bounds, and the pool ids already found valid."""

    input_bytes: int = 0
    output_bytes: int = 0
    body_bytes: int = 0
    free_bytes: int = 0
    valid_pools: set[str] = field(default_factory=set)
    # The output_values of the solutions translated since they were last measured.
    solution_values: list[Any] = field(default_factory=list)

    def add_free_field(self, size: int, path: str, problems: ViolationList) -> bool:
        """Count one free field of `size` bytes at `path`; False (with a violation) when it is too large.

        A refused field is not counted (it will not be sent). Raises OverBudget, with a violation,
        once the counted free fields of the request together pass MAX_FREE_FIELDS_BYTES.
        """
        if size > MAX_FREE_FIELD_BYTES:
            problems.add(path, f"{size} bytes; at most {MAX_FREE_FIELD_BYTES} per field", "TOO_LARGE")
            return False
        self.free_bytes += size
        if self.free_bytes > MAX_FREE_FIELDS_BYTES:
            problems.add(
                "tasks",
                f"message_on_unknown_solution, localization_config and the id and trait lists reach "
                f"{self.free_bytes} bytes at {path}; at most {MAX_FREE_FIELDS_BYTES} per request: split the batch",
                "TOO_LARGE",
            )
            raise OverBudget
        return True

    def over_json_bounds(self, problems: ViolationList) -> bool:
        """Record a violation for each JSON total over its bound; True when any is.

        Checked after each chunk of tasks, so a total is what was counted when translation stopped.
        """
        over = False
        for total, bound, what in (
            (self.input_bytes, MAX_INPUT_VALUES_BYTES, "input_values total"),
            (self.output_bytes, MAX_OUTPUT_VALUES_BYTES, "output_values total"),
            (self.body_bytes, MAX_BODY_BYTES, "the tasks as JSON take"),
        ):
            if total > bound:
                problems.add(
                    "tasks",
                    f"{what} at least {total} bytes; at most {bound} per request: split the batch",
                    "TOO_LARGE",
                )
                over = True
        return over
