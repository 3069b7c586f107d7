"""Id checks for every request field that names a Toloka object: each id is matched in full.

`re.match(r"^...$")` accepts `"2\\n"` (`$` also matches before a final newline). The URL would drop
the newline, but the pool lock and dedupe keys would not, so two spellings of one pool or operation
could run side by side. Every check here uses `fullmatch` over ASCII-only classes, so no
whitespace, newline or non-ASCII digit passes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from gateway.errors import ViolationList

# A decimal Toloka id (pool, skill, project): no sign, no leading zero, at most 19 digits.
TOLOKA_ID = re.compile(r"[1-9][0-9]{0,18}")
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Toloker ids (`reserved_for`, `unavailable_for`) have no published format: visible ASCII only, so
# whitespace, control characters and overlong values are refused.
MAX_TOLOKER_ID_CHARS = 128
TOLOKER_ID = re.compile(rf"[!-~]{{1,{MAX_TOLOKER_ID_CHARS}}}")

UUID_EXAMPLE = "3f1c2a4e-8d6b-4c1f-9a3e-2b7d5e6f8a90"


def is_toloka_id(value: str) -> bool:
    """True when `value` is exactly a decimal Toloka id."""
    return TOLOKA_ID.fullmatch(value) is not None


def check_toloka_id(value: str, problems: ViolationList, field_path: str, what: str = "Toloka id") -> None:
    """Record a violation unless `value` is empty (the caller decides if that is allowed) or a decimal id."""
    if value and TOLOKA_ID.fullmatch(value) is None:
        problems.add(field_path, f"must be a decimal {what} such as 32267581", "INVALID_ID")


def check_pool_id(value: str, problems: ViolationList, field_path: str = "pool_id") -> None:
    """Record a violation unless `value` is a decimal Toloka pool id (required)."""
    if not value:
        problems.add(field_path, "is required", "REQUIRED")
    else:
        check_toloka_id(value, problems, field_path)


def check_operation_id(value: str, problems: ViolationList, field_path: str = "operation_id") -> None:
    """Record a violation unless `value` is empty or an RFC 4122 UUID."""
    if value and UUID.fullmatch(value) is None:
        problems.add(field_path, f"must be a UUID such as {UUID_EXAMPLE}", "INVALID_UUID")


def check_toloker_ids(values: Sequence[str], problems: ViolationList, field_path: str) -> None:
    """Record a violation at the first Toloker id that is empty, too long, or not visible ASCII.

    One per list, so a list of a million bad ids costs one violation, not a million.
    """
    for i, value in enumerate(values):
        if TOLOKER_ID.fullmatch(value) is None:
            problems.add(
                f"{field_path}[{i}]",
                f"must be a Toloker id: 1 to {MAX_TOLOKER_ID_CHARS} visible ASCII characters, no whitespace",
                "INVALID_ID",
            )
            return
