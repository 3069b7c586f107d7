"""Typed settings, parsed once from flags, environment and an optional TOML config file.

Precedence, in every group: command-line flag > environment variable > config file > default.
No other module reads `os.environ`; `app.py` hands each layer its own settings group.

Where each group is parsed (one parser per group; `loader.load` runs them in this order):

    parsing.py        SettingsError, durations, the config file (`--config` / GATEWAY_CONFIG),
                      its `[tables]`, positive env integers; `apply_table` for any group
    server.py         [server]         ServerSettings         server_from
    toloka.py         [toloka]         TolokaSettings         toloka_from (API key from env or file)
    rate_limits.py    [rate_limits]    RateLimitSettings      rate_limits_from, default_limits
    observability.py  [observability]  ObservabilitySettings  observability_from
    config_only.py    [dedupe] [poller] [rework]  (config file only, through apply_table)
    auth.py           [auth]           AuthSettings           auth_from
    rest.py           [rest]           RestSettings           rest_from (the REST front)
    rls.py            [rls]            RlsSettings            rls_from (shadow limits checked
                                                                         against [rate_limits])
    loader.py         Settings (every group) and load(); `redis_url` and REDIS_PASSWORD are read there

The request kinds (`gateway.request_kinds`) and `LimitSpec` (`gateway.limit_spec`) live on the
ground floor beside this package, and are imported from there.
"""

from __future__ import annotations

from gateway.settings.auth import ALL, AuthMode, AuthSettings, CallerPermissions
from gateway.settings.config_only import DedupeSettings, PollerSettings, ReworkSettings
from gateway.settings.loader import Settings, load
from gateway.settings.observability import ObservabilitySettings
from gateway.settings.parsing import SettingsError, parse_duration
from gateway.settings.rate_limits import RateLimitSettings, default_limits
from gateway.settings.rest import RestSettings
from gateway.settings.rls import RlsSettings
from gateway.settings.server import ServerSettings
from gateway.settings.toloka import EMULATOR, TolokaSettings

__all__ = [
    "ALL",
    "EMULATOR",
    "AuthMode",
    "AuthSettings",
    "CallerPermissions",
    "DedupeSettings",
    "ObservabilitySettings",
    "PollerSettings",
    "RateLimitSettings",
    "RestSettings",
    "ReworkSettings",
    "RlsSettings",
    "ServerSettings",
    "Settings",
    "SettingsError",
    "TolokaSettings",
    "default_limits",
    "load",
    "parse_duration",
]
