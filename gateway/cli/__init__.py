"""`toloka-gateway client ...`: call a running gateway from a shell (what `--help` says: help_text.py)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO

from gateway.cli import commands, help_text
from gateway.cli.importing import import_tasks
from gateway.cli.quota_command import add_arguments, quota

__all__ = ["add_parser", "run"]

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_CALLER = "toloka-gateway-cli"


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


Flag = tuple[str, object, str, str | None]  # name, default, help, metavar


def _flags() -> tuple[Flag, ...]:
    """The connection flags; an environment variable's value (read now) is the default."""
    return (
        (
            "--target",
            os.environ.get("GATEWAY_TARGET") or DEFAULT_TARGET,
            f"gateway address HOST:PORT (env GATEWAY_TARGET, default {DEFAULT_TARGET})",
            None,
        ),
        (
            "--caller",
            os.environ.get("GATEWAY_CALLER") or DEFAULT_CALLER,
            f"caller id sent as x-caller-id metadata (env GATEWAY_CALLER, default {DEFAULT_CALLER})",
            None,
        ),
        (
            "--account",
            os.environ.get("GATEWAY_ACCOUNT") or "",
            "Toloka account to use, sent as x-toloka-account metadata (env GATEWAY_ACCOUNT; "
            "default: your first account on the gateway)",
            "NAME",
        ),
        (
            "--token",
            os.environ.get("GATEWAY_TOKEN") or "",
            "bearer token, sent as `authorization: Bearer <token>` metadata (env GATEWAY_TOKEN); "
            "in clear text unless a TLS option is given",
            None,
        ),
    )


_TLS_FLAGS: tuple[Flag, ...] = (
    (
        "--tls-ca",
        "",
        "CA certificate(s) that sign the gateway's certificate, PEM (default: the system's roots)",
        "FILE",
    ),
    ("--tls-cert", "", "client certificate, PEM (mTLS)", "FILE"),
    ("--tls-key", "", "key of --tls-cert, PEM", "FILE"),
    (
        "--tls-server-name",
        "",
        "name to expect in the gateway's certificate when TARGET differs (e.g. through port-forward)",
        "NAME",
    ),
)


def _connection(*, shown: bool) -> argparse.ArgumentParser:
    """The connection flags, as a parent parser: described once on `client`, accepted (hidden) after
    each subcommand so they may follow the command too."""
    p = argparse.ArgumentParser(add_help=False)

    def add(
        group: argparse._ActionsContainer, flags: tuple[tuple[str, object, str, str | None], ...]
    ) -> None:
        for name, default, text, metavar in flags:
            group.add_argument(
                name,
                metavar=metavar,
                default=default if shown else argparse.SUPPRESS,
                help=text if shown else argparse.SUPPRESS,
            )

    add(p, _flags())
    p.add_argument(
        "--timeout",
        type=_positive,
        default=60.0 if shown else argparse.SUPPRESS,
        help="deadline of each call, seconds (default 60)" if shown else argparse.SUPPRESS,
    )
    add(p.add_argument_group("TLS (any of these makes the channel TLS)") if shown else p, _TLS_FLAGS)
    return p


def _command(sub: Any, name: str, *, summary: str, description: str, epilog: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=description,
        epilog=help_text.epilog(epilog),
        parents=[_connection(shown=False)],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return p


def _create_tasks(sub: Any) -> None:
    p = _command(
        sub,
        "create-tasks",
        summary="create tasks from a JSON-lines or JSON-array file",
        description=help_text.CREATE_TASKS,
        epilog=help_text.CREATE_TASKS_EPILOG,
    )
    p.add_argument(
        "file", metavar="FILE", help="tasks, one JSON object per line or a JSON array; '-' is stdin"
    )
    p.add_argument("--pool-id", required=True, help="pool of tasks that do not name their own pool_id")
    p.add_argument("--wait", action="store_true", help="follow the operation to its end (progress on stderr)")
    p.add_argument(
        "--json", action="store_true", help="print the replies as JSON (Toloka's names and types) on stdout"
    )
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


def _import_tasks(sub: Any) -> None:
    p = _command(
        sub,
        "import-tasks",
        summary="stream a JSON-lines file of any size through ImportTasks",
        description=help_text.IMPORT_TASKS,
        epilog=help_text.IMPORT_TASKS_EPILOG,
    )
    p.add_argument("file", metavar="FILE", help="tasks, one JSON object per line; '-' is stdin")
    p.add_argument("--pool-id", required=True, help="pool of tasks that do not name their own pool_id")
    p.add_argument("--operation-id", help="names the import, a UUID (default: a new one, printed first)")
    p.add_argument("--batch-size", type=int, default=0, help="tasks per batch, 1 to 10000 (default 10000)")
    p.add_argument(
        "--allow-defaults", action="store_true", help="tasks without overlap take the pool default"
    )
    p.add_argument("--open-pool", action="store_true", help="open the pool after each batch")
    p.add_argument(
        "--skip-invalid-items", action="store_true", help="Toloka creates the valid tasks of a batch"
    )
    p.add_argument("--json", action="store_true", help="print the batches and the summary as JSON")


def _rules(sub: Any) -> None:
    get = _command(
        sub,
        "get-rework-rules",
        summary="print a pool's re-execution rules",
        description=help_text.GET_RULES,
        epilog=help_text.GET_RULES_EPILOG,
    )
    get.add_argument("pool_id", metavar="POOL")
    get.add_argument("--json", action="store_true", help='print {"rules": [...]} (input of set-rework-rules)')
    put = _command(
        sub,
        "set-rework-rules",
        summary="make a pool's re-execution rules exactly those in FILE",
        description=help_text.SET_RULES,
        epilog=help_text.SET_RULES_EPILOG,
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
        help="call a running gateway (create-tasks, import-tasks, wait, get-rework-rules, set-rework-rules, quota)",
        description=help_text.CLIENT,
        epilog=f"{help_text.CONNECTION_VARIABLES}\n\n{help_text.EXIT_CODES}",
        parents=[_connection(shown=True)],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = client.add_subparsers(dest="client_command", required=True, metavar="COMMAND")
    _create_tasks(sub)
    _import_tasks(sub)
    w = _command(
        sub,
        "wait",
        summary="wait for an operation and print its state",
        description=help_text.WAIT,
        epilog=help_text.WAIT_EPILOG,
    )
    w.add_argument("operation_id", metavar="OPERATION_ID")
    w.add_argument("--log", action="store_true", help="also print the per-task outcome")
    w.add_argument("--json", action="store_true", help="print the reply as JSON")
    _rules(sub)
    q = _command(
        sub,
        "quota",
        summary="show the rate limits that apply to you and what is left of them",
        description=help_text.QUOTA,
        epilog=help_text.QUOTA_EPILOG,
    )
    add_arguments(q)
    parser: argparse.ArgumentParser = client
    return parser


def run(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run the parsed `client` subcommand."""
    return commands.run(args, out, err, more={"import-tasks": import_tasks, "quota": quota})
