"""The `[toloka]` group: where Toloka is and how to talk to it (`--toloka-url`, `TOLOKA_*` env vars)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gateway.settings.parsing import SettingsError, apply_table

EMULATOR = "emulator"


@dataclass(frozen=True)
class TolokaSettings:
    """Where Toloka is and how to talk to it."""

    url: str = EMULATOR
    api_key: str = field(default="", repr=False)  # a secret: never in a repr, log or reply
    act_under_account_id: str = ""
    request_timeout_s: float = 30.0
    max_attempts: int = 5
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0
    max_connections: int = 100
    # Process-wide retry budget (gRPC retry throttling's scheme): each retryable failure takes a
    # token, each success returns retry_budget_ratio; retries stop while half or fewer are left.
    retry_budget_tokens: float = 10.0
    retry_budget_ratio: float = 0.1

    @property
    def uses_emulator(self) -> bool:
        """True when the built-in emulator runs in-process."""
        return self.url == EMULATOR


def read_api_key(env: Mapping[str, str]) -> str:
    """The API key from `TOLOKA_API_KEY`, else from the file `TOLOKA_API_KEY_FILE` names, else ""."""
    if env.get("TOLOKA_API_KEY"):
        return env["TOLOKA_API_KEY"].strip()
    path = env.get("TOLOKA_API_KEY_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as e:
            raise SettingsError(f"TOLOKA_API_KEY_FILE: cannot read {path}: {e.strerror}") from None
    return ""


def toloka_from(
    table: Mapping[str, Any], env: Mapping[str, str], *, toloka_url: str | None
) -> TolokaSettings:
    """TolokaSettings from the `[toloka]` table, then env vars, then the flag.

    With an API key and no URL given by flag or env, the URL defaults to production Toloka
    rather than the emulator.
    """
    toloka = apply_table(TolokaSettings(), table, "toloka")
    url = toloka_url or env.get("TOLOKA_URL") or toloka.url
    api_key = read_api_key(env) or toloka.api_key
    if url == EMULATOR and api_key and not (toloka_url or env.get("TOLOKA_URL")):
        url = "https://toloka.dev"
    toloka = replace(toloka, url=url.rstrip("/"), api_key=api_key)
    if env.get("TOLOKA_ACT_UNDER_ACCOUNT_ID"):
        toloka = replace(toloka, act_under_account_id=env["TOLOKA_ACT_UNDER_ACCOUNT_ID"])
    return toloka
