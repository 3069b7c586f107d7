"""What the gateway says when it starts, in words a person reads.

Where it listens (and the address a client on this machine dials), which Toloka it calls (the built-in
emulator's address and its seeded pools, or the real URL), and where its shared state lives. The first
line keeps the machine-readable fields (`listen`, `port`, `toloka`, `state`) as log extras.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from gateway.emulator.server import EmulatorServer
    from gateway.settings import Settings


@dataclass(frozen=True)
class SeededPool:
    """A pool the built-in emulator starts with, as a caller sees it."""

    id: str
    status: str
    tasks: int
    default_overlap: int | None
    rework_rules: bool


@dataclass(frozen=True)
class StartupFacts:
    """Everything the start-up lines tell."""

    listen: str
    port: int
    toloka_url: str
    emulator_pools: Sequence[SeededPool] | None  # None: a real Toloka
    redis_url: str
    metrics_port: int = 0
    account: str = ""  # the default account's name when `[accounts]` names the accounts, else ""


def local_target(listen: str, port: int) -> str:
    """The address a client on this machine dials: `127.0.0.1:PORT` for a wildcard or loopback listener."""
    host = listen.rpartition(":")[0].strip("[]")
    if host in ("", "::", "0.0.0.0", "localhost", "127.0.0.1", "::1"):
        return f"127.0.0.1:{port}"
    return f"{listen.rpartition(':')[0]}:{port}"


def describe_pool(pool: SeededPool) -> str:
    """`2 OPEN (3 tasks, default overlap 3, rework rules)`."""
    notes = [f"{pool.tasks} task{'s' if pool.tasks != 1 else ''}"] if pool.tasks else []
    if pool.default_overlap is not None:
        notes.append(f"default overlap {pool.default_overlap}")
    elif pool.status != "ARCHIVED":
        notes.append("no default overlap")
    if pool.rework_rules:
        notes.append("rework rules")
    return f"{pool.id} {pool.status}" + (f" ({', '.join(notes)})" if notes else "")


def redis_place(url: str) -> str:
    """`redis://host:6379/0` without user or password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def state_line(redis_url: str) -> str:
    """Where rate-limit windows, dedupe records and operation polls are kept."""
    if not redis_url:
        return "state: in-process (no REDIS_URL set; one replica only)"
    return f"state: Redis at {redis_place(redis_url)} (REDIS_URL; shared by every replica)"


def toloka_line(facts: StartupFacts) -> str:
    """The Toloka the gateway calls (the default account's, when `[accounts]` names the accounts); for
    the emulator, its address and seeded pools."""
    named = f"account {facts.account} (the default): " if facts.account else ""
    if facts.emulator_pools is None:
        key = f"its key from [accounts.{facts.account}]" if facts.account else "TOLOKA_API_KEY set"
        return f"Toloka: {named}{facts.toloka_url} ({key})"
    pools = "; ".join(describe_pool(p) for p in facts.emulator_pools) or "none"
    why = "" if facts.account else "no TOLOKA_API_KEY set; "
    return (
        f"Toloka: {named}the built-in emulator at {facts.toloka_url} ({why}"
        f"control endpoints under {facts.toloka_url}/_emulator/); seeded pools: {pools}"
    )


def startup_lines(facts: StartupFacts) -> list[str]:
    """The start-up lines, first to last."""
    target = local_target(facts.listen, facts.port)
    lines = [
        f"toloka-gateway serving gRPC on {facts.listen} (clients here dial {target}, e.g. "
        f"toloka-gateway client --target {target} ...)",
        toloka_line(facts),
        state_line(facts.redis_url),
    ]
    if facts.metrics_port:
        lines.append(f"metrics: Prometheus on port {facts.metrics_port} (/metrics)")
    return lines


def seeded_pools(
    pools: Mapping[str, Mapping[str, Any]], task_ids: Mapping[str, Sequence[str]]
) -> list[SeededPool]:
    """The emulator's pools in id order, from its pool documents."""
    out = []
    for pool_id in sorted(pools, key=lambda p: (len(p), p)):
        pool = pools[pool_id]
        overlap = (pool.get("defaults") or {}).get("default_overlap_for_new_tasks")
        configs = (pool.get("quality_control") or {}).get("configs") or []
        rework = any(c.get("collector_config", {}).get("type") == "USERS_ASSESSMENT" for c in configs)
        out.append(
            SeededPool(
                id=pool_id,
                status=str(pool.get("status", "")),
                tasks=len(task_ids.get(pool_id, ())),
                default_overlap=int(overlap) if overlap is not None else None,
                rework_rules=rework,
            )
        )
    return out


def log_startup(
    log: logging.Logger,
    settings: Settings,
    toloka_url: str,
    emulator: EmulatorServer | None,
    *,
    port: int,
    metrics_port: int = 0,
) -> None:
    """Log the start-up lines; the first carries the machine-readable fields."""
    pools = None if emulator is None else seeded_pools(emulator.state.pools, emulator.state.pool_task_ids)
    account = settings.toloka_accounts.default if settings.raw_config.get("accounts") else ""
    facts = StartupFacts(
        listen=settings.server.listen,
        port=port,
        toloka_url=toloka_url,
        emulator_pools=pools,
        redis_url=settings.redis_url,
        metrics_port=metrics_port,
        account=account,
    )
    first, *rest = startup_lines(facts)
    extra: dict[str, object] = {
        "listen": facts.listen,
        "port": port,
        "toloka": toloka_url
        if emulator is None
        else "built-in emulator" + ("" if account else " (no TOLOKA_API_KEY set)"),
        "state": "redis" if settings.redis_url else "in-process (no REDIS_URL set; one replica only)",
    }
    if emulator is not None:
        extra["emulator_url"] = toloka_url
    if account:
        extra["account"] = account
    log.info(first, extra=extra)
    for line in rest:
        log.info(line)
