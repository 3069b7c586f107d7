"""The `toloka-gateway` command: `serve` (the gateway), `emulator` (a Toloka emulator), `client` (calls)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gateway import event_loop
from gateway.cli import help_text
from gateway.settings import SettingsError

RAW = argparse.RawDescriptionHelpFormatter


class _EmulatorHelp(argparse.Action):
    """`emulator --help`: the seeded pools are read from a fresh emulator only when help is asked for."""

    def __init__(self, option_strings: list[str], dest: str, **kw: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kw)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        parser.epilog = help_text.emulator_epilog()
        parser.print_help()
        parser.exit()


def _serve_parser(sub: Any) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the gateway (the built-in emulator unless TOLOKA_API_KEY is set)",
        description=help_text.SERVE,
        epilog=help_text.SERVE_EPILOG,
        formatter_class=RAW,
    )
    serve.add_argument("--listen", help="gRPC address (env GATEWAY_LISTEN, default [::]:50051)")
    serve.add_argument(
        "--rest-listen",
        metavar="HOST:PORT",
        help="serve Toloka's REST API (/api/v1) here too, for toloka-kit and any HTTP client "
        "(env GATEWAY_REST_LISTEN; off by default)",
    )
    serve.add_argument("--toloka-url", help="Toloka base URL or 'emulator' (env TOLOKA_URL)")
    serve.add_argument("--redis-url", help="Redis URL; unset means in-process state (env REDIS_URL)")
    serve.add_argument("--metrics-listen", help="Prometheus address (env GATEWAY_METRICS_LISTEN)")
    serve.add_argument("--config", help="TOML config file (env GATEWAY_CONFIG)")
    serve.add_argument(
        "--shutdown-delay",
        metavar="DURATION",
        help="after SIGTERM, how long health says NOT_SERVING while calls are still served, e.g. 5s "
        "(env GATEWAY_SHUTDOWN_DELAY, default 5s); a second signal ends it early",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="toloka-gateway",
        description=__doc__,
        epilog="`toloka-gateway COMMAND --help` describes each command; `make run` starts `serve`.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _serve_parser(sub)
    emulator = sub.add_parser(
        "emulator",
        help="run the Toloka emulator alone as an HTTP server",
        description=help_text.EMULATOR,
        formatter_class=RAW,
        add_help=False,
    )
    emulator.add_argument("-h", "--help", action=_EmulatorHelp, help="show this help message and exit")
    emulator.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT (default 127.0.0.1:8080)")
    emulator.add_argument(
        "--crowd-config",
        metavar="FILE",
        help="a JSON file of crowd settings, as POST /_emulator/crowd takes them (docs/emulator.md)",
    )
    from gateway.cli import add_parser as add_client_parser

    add_client_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    if args.command == "client":
        from gateway.cli import run as run_client

        return run_client(args)
    if args.command == "emulator":
        from gateway.emulator.server import run_forever

        run_forever(args.listen, crowd_config=args.crowd_config)
        return 0
    from gateway import settings as settings_mod
    from gateway.app import Gateway
    from gateway.malloc_tuning import return_large_blocks_to_the_system
    from gateway.observability.call_log import configure_logging
    from gateway.settings.tracing import tracing_from

    try:
        tracing = tracing_from()
        settings = settings_mod.load(
            config_path=args.config,
            listen=args.listen,
            toloka_url=args.toloka_url,
            redis_url=args.redis_url,
            metrics_listen=args.metrics_listen,
            shutdown_delay=args.shutdown_delay,
            rest_listen=args.rest_listen,
        )
    except SettingsError as e:
        print(f"toloka-gateway: configuration error: {e}", file=sys.stderr)
        return 2
    configure_logging(settings.observability.log_level)
    return_large_blocks_to_the_system()
    try:
        event_loop.run(Gateway(settings, tracing_settings=tracing).run_until_signalled())
    except OSError as e:
        print(f"toloka-gateway: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
