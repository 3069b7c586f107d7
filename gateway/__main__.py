"""The `toloka-gateway` command: `serve` (the gateway), `emulator` (a Toloka emulator), `client` (calls)."""

from __future__ import annotations

import argparse
import sys

from gateway import event_loop
from gateway.settings import SettingsError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toloka-gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--listen", help="gRPC address (env GATEWAY_LISTEN, default [::]:50051)")
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
    emulator = sub.add_parser("emulator", help="run the Toloka emulator as an HTTP server")
    emulator.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT (default 127.0.0.1:8080)")
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

        run_forever(args.listen)
        return 0
    from gateway import settings as settings_mod
    from gateway.app import Gateway
    from gateway.observability.call_log import configure_logging

    try:
        settings = settings_mod.load(
            config_path=args.config,
            listen=args.listen,
            toloka_url=args.toloka_url,
            redis_url=args.redis_url,
            metrics_listen=args.metrics_listen,
            shutdown_delay=args.shutdown_delay,
        )
    except SettingsError as e:
        print(f"toloka-gateway: configuration error: {e}", file=sys.stderr)
        return 2
    configure_logging(settings.observability.log_level)
    try:
        event_loop.run(Gateway(settings).run_until_signalled())
    except OSError as e:
        print(f"toloka-gateway: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
