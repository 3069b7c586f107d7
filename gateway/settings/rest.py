"""The `[rest]` group: the Toloka-compatible REST front (`--rest-listen` / `GATEWAY_REST_LISTEN`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from gateway.settings.parsing import SettingsError, apply_table, env_int


@dataclass(frozen=True)
class RestSettings:
    """The REST front: off unless `listen` (HOST:PORT) is set; bodies over `max_body_bytes` are refused."""

    listen: str = ""
    max_body_bytes: int = 32 * 1024 * 1024


def rest_from(table: Mapping[str, Any], env: Mapping[str, str], *, listen: str | None) -> RestSettings:
    """RestSettings from the `[rest]` table, then env vars, then the flag."""
    rest = apply_table(RestSettings(), table, "rest")
    rest = replace(
        rest,
        listen=listen or env.get("GATEWAY_REST_LISTEN") or rest.listen,
        max_body_bytes=env_int(env, "GATEWAY_REST_MAX_BODY_BYTES", rest.max_body_bytes),
    )
    if rest.listen and ":" not in rest.listen:
        raise SettingsError(f"rest.listen: {rest.listen!r} is not HOST:PORT")
    if rest.max_body_bytes <= 0:
        raise SettingsError("rest.max_body_bytes must be positive")
    return rest
