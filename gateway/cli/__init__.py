"""`toloka-gateway client ...`: call a running gateway from a shell.

    toloka-gateway client create-tasks tasks.jsonl --pool-id 1 --wait
    toloka-gateway client wait OPERATION_ID --log
    toloka-gateway client get-rework-rules 1 --json > rules.json
    toloka-gateway client set-rework-rules 1 rules.json

The target, caller id, bearer token and timeout come from flags, else from GATEWAY_TARGET,
GATEWAY_CALLER and GATEWAY_TOKEN (the client is its own program: it reads these variables here, not
through gateway.settings). Any of --tls-ca, --tls-cert, --tls-key switches to a TLS channel:

    toloka-gateway client --token "$TOKEN" --tls-ca ca.crt wait OPERATION_ID
    toloka-gateway client --tls-ca ca.crt --tls-cert me.crt --tls-key me.key wait OPERATION_ID
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from gateway.cli.commands import run

__all__ = ["add_parser", "run"]

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_CALLER = "toloka-gateway-cli"


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _globals(p: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """The flags every client command takes; on subcommands too, so they may follow the command."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    p.add_argument(
        "--target",
        default=default(os.environ.get("GATEWAY_TARGET") or DEFAULT_TARGET),
        help=f"gateway address HOST:PORT (env GATEWAY_TARGET, default {DEFAULT_TARGET})",
    )
    p.add_argument(
        "--caller",
        default=default(os.environ.get("GATEWAY_CALLER") or DEFAULT_CALLER),
        help=f"caller id sent as x-caller-id metadata (env GATEWAY_CALLER, default {DEFAULT_CALLER})",
    )
    p.add_argument(
        "--token",
        default=default(os.environ.get("GATEWAY_TOKEN") or ""),
        help="bearer token, sent as `authorization: Bearer <token>` metadata (env GATEWAY_TOKEN); "
        "in clear text unless a TLS option is given",
    )
    p.add_argument(
        "--timeout", type=_positive, default=default(60.0), help="deadline of each call, seconds (default 60)"
    )
    tls = p.add_argument_group("TLS (any of these makes the channel TLS)")
    tls.add_argument(
        "--tls-ca",
        metavar="FILE",
        default=default(""),
        help="CA certificate(s) that sign the gateway's certificate, PEM (default: the system's roots)",
    )
    tls.add_argument("--tls-cert", metavar="FILE", default=default(""), help="client certificate, PEM (mTLS)")
    tls.add_argument("--tls-key", metavar="FILE", default=default(""), help="key of --tls-cert, PEM")
    tls.add_argument(
        "--tls-server-name",
        metavar="NAME",
        default=default(""),
        help="name to expect in the gateway's certificate when TARGET differs (e.g. through port-forward)",
    )


def _command(sub: Any, name: str, **kw: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, **kw)
    _globals(p, suppress=True)
    return p


def _create_tasks(sub: Any) -> None:
    p = _command(
        sub,
        "create-tasks",
        help="create tasks from a JSON-lines or JSON-array file",
        description="Create tasks. FILE holds one task object per line (input_values and optional Toloka "
        "task fields) or one JSON array of them; '-' reads stdin. The file is checked before anything is sent.",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--pool-id", required=True, help="pool of tasks that do not name their own pool_id")
    p.add_argument("--wait", action="store_true", help="follow the operation to its end (progress on stderr)")
    p.add_argument("--json", action="store_true", help="print the replies as JSON (proto field names)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--async-mode", dest="async_mode", action="store_true", default=None, help="async_mode=true (default)"
    )
    mode.add_argument(
        "--sync", dest="async_mode", action="store_false", help="async_mode=false (<= 5,000 tasks)"
    )
    p.add_argument("--operation-id", help="idempotency key, a UUID (default: the gateway makes one)")
    p.add_argument(
        "--allow-defaults", action="store_true", help="tasks without overlap take the pool default"
    )
    p.add_argument("--open-pool", action="store_true", help="open the pool after creating the tasks")
    p.add_argument(
        "--skip-invalid-items", action="store_true", help="create the valid tasks, report the rest"
    )


def _rules(sub: Any) -> None:
    get = _command(sub, "get-rework-rules", help="print a pool's re-execution rules")
    get.add_argument("pool_id", metavar="POOL")
    get.add_argument("--json", action="store_true", help='print {"rules": [...]} (input of set-rework-rules)')
    put = _command(
        sub,
        "set-rework-rules",
        help="make a pool's re-execution rules exactly those in FILE",
        description='FILE: {"rules": [...]} in the proto JSON mapping, e.g. '
        '{"rules": [{"restriction": {}, "delta": 1}]}; \'-\' reads stdin.',
    )
    put.add_argument("pool_id", metavar="POOL")
    put.add_argument("file", metavar="FILE")
    put.add_argument("--refuse-if-open", action="store_true", help="fail instead of closing an open pool")
    put.add_argument("--operation-id", help="idempotency key, a UUID")
    put.add_argument("--json", action="store_true", help="print the reply as JSON")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `client` and its subcommands to the `toloka-gateway` parser."""
    client = subparsers.add_parser(
        "client",
        help="call a running gateway",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _globals(client)
    sub = client.add_subparsers(dest="client_command", required=True, metavar="COMMAND")
    _create_tasks(sub)
    w = _command(sub, "wait", help="wait for an operation and print its state")
    w.add_argument("operation_id", metavar="OPERATION_ID")
    w.add_argument("--log", action="store_true", help="also print the per-task outcome")
    w.add_argument("--json", action="store_true", help="print the reply as JSON")
    _rules(sub)
    parser: argparse.ArgumentParser = client
    return parser
