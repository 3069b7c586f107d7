"""What every settings parser shares: `SettingsError`, durations, the config file and its tables, env integers."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    Group = TypeVar("Group", bound=DataclassInstance)
else:
    Group = TypeVar("Group")

_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class SettingsError(ValueError):
    """A setting has a value the gateway cannot use; the message names it."""


def parse_duration(text: str | float | int, *, name: str) -> float:
    """Parse `1.5`, `500ms`, `30s`, `1m`, `1h`, `1d` into seconds."""
    if isinstance(text, int | float):
        return float(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h|d)?\s*", text)
    if not m:
        raise SettingsError(f"{name}: {text!r} is not a duration (examples: 500ms, 30s, 1m, 1h, 1d)")
    value, unit = float(m.group(1)), m.group(2) or "s"
    return value / 1000 if unit == "ms" else value * _PERIODS[unit]


def read_config(path: str) -> dict[str, Any]:
    """The TOML config file at `path` as a table; an empty table when no path is given."""
    if not path:
        return {}
    try:
        return tomllib.loads(Path(path).read_text())
    except OSError as e:
        raise SettingsError(f"--config: cannot read {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"--config: {path} is not valid TOML: {e}") from None


def section(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The config file's `[name]` table (empty when absent)."""
    value = config.get(name, {})
    if not isinstance(value, Mapping):
        raise SettingsError(f"config [{name}] must be a table")
    return value


def apply_table(group: Group, table: Mapping[str, Any], where: str) -> Group:
    """Override a frozen settings group's fields from a config table (durations accept units)."""
    known = set(group.__dataclass_fields__)
    changes: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise SettingsError(f"config [{where}]: unknown key {key!r}")
        current = getattr(group, key)
        if key.endswith("_s"):
            changes[key] = parse_duration(value, name=f"{where}.{key}")
        elif isinstance(current, bool):
            changes[key] = bool(value)
        elif isinstance(current, int):
            changes[key] = int(value)
        elif isinstance(current, float):
            changes[key] = float(value)
        else:
            changes[key] = value
    return replace(group, **changes)


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    """A positive integer from env var `name`, or `default` when it is unset or empty."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not an integer") from None
    if value <= 0:
        raise SettingsError(f"{name}: must be positive")
    return value
