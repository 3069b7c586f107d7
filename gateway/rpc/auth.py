"""Who is calling, and may they: identity from metadata, a bearer token, or the client certificate.

Runs before any service code, so a refused caller spends no quota and reaches no Toloka endpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import grpc

from gateway import errors
from gateway.settings import ALL, AuthSettings, SettingsError
from gateway.settings.accounts import DEFAULT_ACCOUNT
from gateway.settings.auth import CallerPermissions

ANONYMOUS = "anonymous"
ACCOUNT_METADATA = "x-toloka-account"  # the REST front reads the header of the same name


def load_tokens(path: str) -> dict[str, bytes]:
    """`caller = "token"` lines (TOML) as caller -> SHA-256 of the token."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as e:
        raise SettingsError(f"auth.tokens_file: cannot read {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"auth.tokens_file: {path} is not valid TOML: {e}") from None
    tokens = data.get("tokens", data)
    if not isinstance(tokens, dict) or not all(isinstance(v, str) and v for v in tokens.values()):
        raise SettingsError(f"auth.tokens_file: {path} must map caller names to non-empty token strings")
    return {str(caller): hashlib.sha256(token.encode()).digest() for caller, token in tokens.items()}


def _metadata(context: grpc.aio.ServicerContext[Any, Any], key: str) -> str:
    for k, v in context.invocation_metadata() or ():
        if k == key and isinstance(v, str):
            return v
    return ""


class CallerAuth:
    """Identifies the caller of each RPC and checks its permissions."""

    def __init__(
        self,
        *,
        settings: AuthSettings,
        metadata_key: str,
        accounts: Sequence[str] = (DEFAULT_ACCOUNT,),
        default_account: str = "",
    ) -> None:
        self._settings = settings
        self._metadata_key = metadata_key.lower()
        self._tokens = load_tokens(settings.tokens_file) if settings.mode == "token" else {}
        self._accounts = tuple(accounts)  # the Toloka accounts this gateway serves
        self._default_account = default_account or self._accounts[0]

    def account(self, context: grpc.aio.ServicerContext[Any, Any], caller: str) -> str:
        """The Toloka account of a gRPC call (`account_for` with its `x-toloka-account` metadata)."""
        return self.account_for(caller, _metadata(context, ACCOUNT_METADATA))

    def account_for(self, caller: str, requested: str) -> str:
        """The Toloka account a call goes to: the one it names (`x-toloka-account` metadata or the
        `X-Toloka-Account` header), or the caller's default (its first account, else the gateway's
        default); PermissionDenied, naming the account, for one the caller may not use or this
        gateway does not serve; Unauthenticated for an unknown caller."""
        allowed = self._known(caller).accounts or (self._default_account,)
        requested = requested.strip()
        if not requested:
            requested = allowed[0]
        if requested in allowed and requested in self._accounts:
            return requested
        shown = requested[:64]
        why = (
            f"caller {caller!r} may not use Toloka account {shown!r} (its accounts: {', '.join(allowed)})"
            if requested not in allowed
            else f"Toloka account {shown!r} is not served by this gateway "
            f"(it serves {', '.join(map(repr, self._accounts))})"
        )
        raise errors.PermissionDenied(
            why, reason="ACCOUNT_NOT_ALLOWED", metadata={"caller": caller, "account": shown}
        )

    def identify(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        """The caller's name, or Unauthenticated when the mode demands proof and there is none."""
        mode = self._settings.mode
        if mode == "token":
            return self._from_token(_metadata(context, "authorization"))
        if mode == "mtls":
            auth = context.auth_context()
            for key in ("x509_common_name", "x509_subject_alternative_name"):
                values = list(auth.get(key) or [])
                if values:
                    return bytes(values[0]).decode()
            raise errors.Unauthenticated("no client certificate identity", reason="NO_CLIENT_CERTIFICATE")
        caller = _metadata(context, self._metadata_key)
        if not caller and self._settings.require_known_callers:
            raise errors.Unauthenticated(
                f"no caller identity: set the `{self._metadata_key}` metadata", reason="NO_CALLER_IDENTITY"
            )
        return caller or ANONYMOUS

    def identify_http(self, authorization: str, caller_id: str) -> str:
        """The caller of a REST request: its gateway token in `Authorization: OAuth|ApiKey|Bearer <token>`
        in token mode, else `caller_id` (the caller metadata key as a header) or anonymous.

        In mTLS mode the REST front has no client certificate to read, so every request is refused.
        """
        mode = self._settings.mode
        if mode == "token":
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() not in ("oauth", "apikey", "bearer") or not token.strip():
                raise errors.Unauthenticated(
                    "send your gateway token as `Authorization: OAuth <token>`", reason="MISSING_TOKEN"
                )
            return self._caller_of(token)
        if mode == "mtls":
            raise errors.Unauthenticated(
                "this gateway identifies callers by client certificate, which the REST front cannot read",
                reason="NO_CLIENT_CERTIFICATE",
            )
        if not caller_id and self._settings.require_known_callers:
            raise errors.Unauthenticated(
                f"no caller identity: set the `{self._metadata_key}` header", reason="NO_CALLER_IDENTITY"
            )
        return caller_id or ANONYMOUS

    def _known(self, caller: str) -> CallerPermissions:
        """The caller's permissions, or Unauthenticated for a caller this gateway does not admit."""
        perms = self._settings.permissions_for(caller)
        if perms is None:
            raise errors.Unauthenticated(
                f"caller {caller!r} is not known to this gateway", reason="UNKNOWN_CALLER"
            )
        return perms

    def authorize_http(self, caller: str, method: str, path: str, account: str) -> None:
        """PermissionDenied (or Unauthenticated for an unknown caller) unless the REST request is
        allowed in `account`."""
        perms = self._known(caller).in_account(account)
        if not perms.allows_rest(method, path):
            raise errors.PermissionDenied(
                f"caller {caller!r} may not send {method} {path}",
                reason="REQUEST_NOT_ALLOWED",
                metadata={"caller": caller, "method": method},
            )

    def _from_token(self, header: str) -> str:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise errors.Unauthenticated(
                "send `authorization: Bearer <token>` metadata", reason="MISSING_BEARER_TOKEN"
            )
        return self._caller_of(token)

    def _caller_of(self, token: str) -> str:
        """The caller whose token this is, or Unauthenticated."""
        presented = hashlib.sha256(token.strip().encode()).digest()
        found = ""
        for caller, expected in self._tokens.items():  # every entry compared: no early exit
            if hmac.compare_digest(presented, expected):
                found = caller
        if not found:
            raise errors.Unauthenticated("the token is not valid", reason="INVALID_BEARER_TOKEN")
        return found

    def allowed_pools(self, caller: str, account: str) -> frozenset[str] | None:
        """The pools of `account` an authorised caller may use, or None when it may use every pool."""
        perms = self._known(caller).in_account(account)
        return None if ALL in perms.pools else perms.pools

    def authorize(self, caller: str, method: str, pools: Iterable[str], account: str) -> None:
        """PermissionDenied (or Unauthenticated for an unknown caller) unless the call is allowed in
        `account` (the pools are that account's)."""
        perms = self._known(caller).in_account(account)
        if not perms.allows_method(method):
            raise errors.PermissionDenied(
                f"caller {caller!r} may not call {method}",
                reason="METHOD_NOT_ALLOWED",
                metadata={"caller": caller, "method": method},
            )
        denied = sorted({p for p in pools if not perms.allows_pool(p)})
        if denied:
            raise errors.PermissionDenied(
                f"caller {caller!r} may not use pool(s) {', '.join(denied[:5])}",
                reason="POOL_NOT_ALLOWED",
                metadata={"caller": caller, "pools": ",".join(denied[:20])},
            )


def pools_of(request: Any) -> list[str]:
    """The Toloka pools a request touches (CreateTasks: every task's pool; rework calls: pool_id)."""
    tasks = getattr(request, "tasks", None)
    if tasks is not None:
        return list({t.pool_id for t in tasks})
    pool_id = getattr(request, "pool_id", "")
    return [pool_id] if pool_id else []


def server_credentials(settings: AuthSettings) -> grpc.ServerCredentials | None:
    """TLS credentials requiring a client certificate, in mTLS mode."""
    if settings.mode != "mtls":
        return None
    try:
        key = Path(settings.tls_key_file).read_bytes()
        cert = Path(settings.tls_cert_file).read_bytes()
        ca = Path(settings.tls_client_ca_file).read_bytes()
    except OSError as e:
        raise SettingsError(f"auth: cannot read a TLS file: {e.filename}: {e.strerror}") from None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)
