"""Toloka's search requests for every list endpoint: filters, range bounds, multi-key sort, paging.

A `ListSpec` names what one endpoint honours: equality filters, range fields (each with the `_lt`,
`_lte`, `_gt`, `_gte` bounds) and sort fields. Anything else in the query is refused with a 400
`VALIDATION_ERROR` whose payload names the parameter, so nothing is silently ignored.

- `sort` is a comma-separated list of fields, each optionally prefixed by `-` (descending), as
  toloka-kit sends it (`sort=-created,-id`); the default is `id`.
- `limit` defaults to 50 and is capped per endpoint; `has_more` says whether more items matched.
- Numeric ids (projects, pools) compare as numbers, other ids as strings; dates accept any ISO 8601
  form (toloka-kit sends naive UTC) and compare as instants; an item without the field never matches
  a bound on it and sorts last.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.emulator.wire import JSON, field_error, validation_error

_BOUNDS = ("_lt", "_lte", "_gt", "_gte")
_PAGING = ("sort", "limit")
Match = Callable[[JSON, str], bool]


def id_key(value: Any) -> tuple[int, int, str]:
    """Numeric ids order as numbers and before other ids, which order as strings."""
    text = str(value)
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


def date_key(value: Any) -> float:
    """An ISO 8601 date (naive means UTC) as epoch seconds; ValueError when malformed."""
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _int_key(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("integer expected")
    return int(value)


KEYS: dict[str, Callable[[Any], Any]] = {"id": id_key, "date": date_key, "int": _int_key}


def equals(name: str) -> Match:
    """`item[name] == value` (compared as strings; a comma-separated value matches any of its parts)."""

    def match(item: JSON, value: str) -> bool:
        got = item.get(name)
        return got is not None and str(got) in value.split(",")

    return match


@dataclass(frozen=True, slots=True)
class ListSpec:
    """What one list endpoint honours. `ranges` maps a field to its kind: `id`, `date` or `int`."""

    path: str
    filters: Mapping[str, Match] = field(default_factory=dict)
    ranges: Mapping[str, str] = field(default_factory=dict)
    sorts: tuple[str, ...] = ("id",)
    max_limit: int = 100_000
    default_limit: int = 50


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A parsed search request."""

    filters: list[tuple[Match, str]]
    bounds: list[tuple[str, Callable[[Any], Any], str, Any]]
    sort: list[tuple[str, bool]]
    limit: int


def parse(spec: ListSpec, query: Mapping[str, str]) -> ListQuery:
    """Validate a query against the spec: 400 naming the first parameter it cannot honour."""
    filters: list[tuple[Match, str]] = []
    bounds: list[tuple[str, Callable[[Any], Any], str, Any]] = []
    for name, raw in query.items():
        if name in _PAGING:
            continue
        if name in spec.filters:
            filters.append((spec.filters[name], raw))
            continue
        base, _, suffix = name.rpartition("_")
        kind = spec.ranges.get(base)
        if kind is None or f"_{suffix}" not in _BOUNDS:
            raise _refused(name, f"Filter '{name}' is not supported by the emulator for {spec.path}")
        key = KEYS[kind]
        try:
            bound = key(raw)
        except ValueError as exc:
            raise validation_error({name: field_error("VALUE_NOT_ALLOWED", f"Bad value: {exc}")}) from exc
        bounds.append((base, key, suffix, bound))
    return ListQuery(filters, bounds, _parse_sort(spec, query.get("sort")), _parse_limit(spec, query))


def _refused(name: str, message: str) -> Exception:
    return validation_error({name: field_error("NOT_SUPPORTED", message)}, message)


def _parse_sort(spec: ListSpec, raw: str | None) -> list[tuple[str, bool]]:
    if raw is None or not raw.strip():
        return [("id", False)]
    sort: list[tuple[str, bool]] = []
    for part in raw.split(","):
        token = part.strip()
        name = token.removeprefix("-")
        if name not in spec.sorts:
            allowed = ", ".join(spec.sorts)
            raise _refused("sort", f"Sort by '{name}' is not supported for {spec.path}; fields: {allowed}")
        sort.append((name, token.startswith("-")))
    return sort


def _parse_limit(spec: ListSpec, query: Mapping[str, str]) -> int:
    raw = query.get("limit")
    if raw is None:
        return spec.default_limit
    try:
        limit = int(raw)
    except ValueError:
        limit = -1
    if not 1 <= limit <= spec.max_limit:
        raise validation_error(
            {"limit": field_error("VALUE_NOT_ALLOWED", f"limit must be 1..{spec.max_limit}")}
        )
    return limit


def _within(value: Any, suffix: str, bound: Any) -> bool:
    if suffix == "gt":
        return bool(value > bound)
    if suffix == "gte":
        return bool(value >= bound)
    if suffix == "lt":
        return bool(value < bound)
    return bool(value <= bound)


def _matches(item: JSON, parsed: ListQuery) -> bool:
    for match, value in parsed.filters:
        if not match(item, value):
            return False
    for name, key, suffix, bound in parsed.bounds:
        raw = item.get(name)
        if raw is None or not _within(key(raw), suffix, bound):
            return False
    return True


def _sorted(items: list[JSON], sort: list[tuple[str, bool]], kinds: Mapping[str, str]) -> list[JSON]:
    for name, descending in reversed(sort):
        key = KEYS[kinds.get(name, "id" if name == "id" else "date")]
        present = [i for i in items if i.get(name) is not None]
        absent = [i for i in items if i.get(name) is None]
        present.sort(key=lambda i, k=key, n=name: k(i[n]), reverse=descending)  # type: ignore[misc]
        items = present + absent
    return items


def page(spec: ListSpec, query: Mapping[str, str], items: Iterable[JSON]) -> JSON:
    """`{items, has_more}` of the items that match the query, sorted and cut at the limit."""
    parsed = parse(spec, query)
    kinds = {**spec.ranges, "id": "id"}
    selected = [item for item in items if _matches(item, parsed)]
    selected = _sorted(selected, parsed.sort, kinds)
    return {"items": selected[: parsed.limit], "has_more": len(selected) > parsed.limit}


def page_in_id_order(
    spec: ListSpec, query: Mapping[str, str], ids: list[str], lookup: Callable[[str], JSON]
) -> JSON:
    """`page` over `ids` that are already in id order (one pool's tasks, suites or assignments): sorted by
    id, only the ids within the bounds are looked at, and only until the page is full."""
    parsed = parse(spec, query)
    if parsed.sort not in ([("id", False)], [("id", True)]):
        return page(spec, query, (lookup(i) for i in ids))
    lo, hi = 0, len(ids)
    if "id_gt" in query:
        lo = max(lo, bisect_right(ids, query["id_gt"]))
    if "id_gte" in query:
        lo = max(lo, bisect_left(ids, query["id_gte"]))
    if "id_lt" in query:
        hi = min(hi, bisect_left(ids, query["id_lt"]))
    if "id_lte" in query:
        hi = min(hi, bisect_right(ids, query["id_lte"]))
    window = range(hi - 1, lo - 1, -1) if parsed.sort[0][1] else range(lo, hi)
    selected: list[JSON] = []
    for index in window:
        item = lookup(ids[index])
        if _matches(item, parsed):
            selected.append(item)
            if len(selected) > parsed.limit:
                break
    return {"items": selected[: parsed.limit], "has_more": len(selected) > parsed.limit}
