"""`toloka-gateway client quota [--kind KIND]`: the rate limits that apply to the caller, as a table."""

from __future__ import annotations

import argparse
from typing import TextIO

import grpc

from gateway.api.toloka.gateway.v1 import gateway_pb2 as pb
from gateway.cli import summary
from gateway.cli.commands import OK, connected, fail
from gateway.settings.accounts import DEFAULT_ACCOUNT

_UNITS = {pb.LIMIT_UNIT_REQUESTS: "requests", pb.LIMIT_UNIT_TASKS: "tasks"}
HEADER = ("LIMIT", "KINDS", "UNIT", "CAPACITY", "PER", "REMAINING", "NEXT UNIT IN")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's own flags."""
    parser.add_argument("--kind", default="", help="only the limits that count this request kind")
    parser.add_argument("--json", action="store_true", help="print the reply as JSON")


def quota(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`client quota`: one GetQuota call, printed as a table (or JSON)."""
    with connected(args) as client:
        try:
            reply: pb.GetQuotaResponse = client.stub.GetQuota(
                pb.GetQuotaRequest(kind=args.kind), metadata=client.metadata, timeout=client.timeout
            )
        except grpc.RpcError as e:
            return fail(e, err, args)
    if args.json:
        print(summary.dumps(summary.to_json(reply)), file=out)
    else:
        print("\n".join(table(reply)), file=out)
    return OK


def table(reply: pb.GetQuotaResponse) -> list[str]:
    """The limits as aligned columns, a note on shadow limits and on degraded mode."""
    rows = [HEADER, *(_row(limit) for limit in reply.limits)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    right = {3, 5}  # numbers
    lines = [
        "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    if not reply.limits:
        lines.append("(no limit applies)")
    if any(limit.shadow for limit in reply.limits):
        lines.append("(shadow): decided and counted, never refuses")
    cooldown = reply.toloka_cooldown.ToTimedelta().total_seconds()
    if cooldown > 0:
        lines.append(f"Toloka answered 429: requests are held back for {_seconds(cooldown)} more")
    if reply.degraded:
        lines.append("degraded: Redis is unreachable; REMAINING is this replica's local share")
    if reply.account and reply.account != DEFAULT_ACCOUNT:  # a gateway of named accounts
        lines.append(f"account: {reply.account}")
    return lines


def _row(limit: pb.LimitQuota) -> tuple[str, ...]:
    name = f"caller:{limit.caller}/{limit.name}" if limit.caller else limit.name
    wait = limit.next_unit_in.ToTimedelta().total_seconds()
    return (
        name + (" (shadow)" if limit.shadow else ""),
        ",".join(limit.kinds),
        _UNITS.get(limit.unit, "?"),
        f"{limit.capacity:,}",
        _seconds(limit.period.ToTimedelta().total_seconds()),
        f"{limit.remaining:,}",
        _seconds(wait) if wait > 0 else "-",
    )


def _seconds(value: float) -> str:
    """`1s`, `1m`, `1h`, `1d` for whole periods; else seconds with up to 3 decimals."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{value / size:g}{unit}"
    return f"{value:.3f}".rstrip("0").rstrip(".") + "s"
