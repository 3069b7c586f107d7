"""How the client reaches the gateway: plaintext or TLS (optionally with a client certificate), and the
metadata every call carries (caller id, bearer token)."""

from __future__ import annotations

import argparse
from pathlib import Path

import grpc


class ClientSetupError(ValueError):
    """The connection options cannot be used (nothing was sent); the message names the option."""


def _read(path: str, option: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ClientSetupError(f"{option}: cannot read {path}: {e.strerror}") from None


def uses_tls(args: argparse.Namespace) -> bool:
    """True when any TLS option is given."""
    return bool(args.tls_ca or args.tls_cert or args.tls_key or args.tls_server_name)


def channel_credentials(args: argparse.Namespace) -> grpc.ChannelCredentials | None:
    """TLS credentials from --tls-ca / --tls-cert / --tls-key, or None for a plaintext channel.

    Without --tls-ca the server certificate is checked against the system's trusted roots.
    """
    if not uses_tls(args):
        return None
    if bool(args.tls_cert) != bool(args.tls_key):
        raise ClientSetupError("--tls-cert and --tls-key go together (the client certificate and its key)")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(args.tls_ca, "--tls-ca") if args.tls_ca else None,
        private_key=_read(args.tls_key, "--tls-key") if args.tls_key else None,
        certificate_chain=_read(args.tls_cert, "--tls-cert") if args.tls_cert else None,
    )


# A `wait` can sit silent for minutes: keepalive pings keep NAT boxes and proxies from dropping the
# connection, no more often than the gateway's minimum ping interval (10 s by default).
KEEPALIVE_TIME_MS = 30_000


def channel_options(args: argparse.Namespace) -> list[tuple[str, str | int]]:
    """gRPC channel options (every name one gRPC core knows: it ignores unknown names silently)."""
    options: list[tuple[str, str | int]] = [
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", 10_000),
    ]
    if uses_tls(args) and args.tls_server_name:
        options.append(("grpc.ssl_target_name_override", args.tls_server_name))
    return options


def open_channel(args: argparse.Namespace) -> grpc.Channel:
    """A secure channel when any TLS option is given, else a plaintext one."""
    credentials = channel_credentials(args)
    options = channel_options(args)
    if credentials is None:
        return grpc.insecure_channel(args.target, options=options)
    return grpc.secure_channel(args.target, credentials, options=options)


def call_metadata(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    """The caller id, the Toloka account when one is named, and `authorization: Bearer <token>`
    when a token is given."""
    metadata: tuple[tuple[str, str], ...] = (("x-caller-id", args.caller),)
    account = args.account.strip()
    if account:
        metadata += (("x-toloka-account", account),)
    token = (args.token or "").strip()
    if token:
        if any(c.isspace() for c in token):
            raise ClientSetupError("--token / GATEWAY_TOKEN: the token must not contain whitespace")
        metadata += (("authorization", f"Bearer {token}"),)
    return metadata
