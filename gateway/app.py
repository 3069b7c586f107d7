"""Composition root: builds every layer from Settings and owns the start/stop order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from redis.exceptions import RedisError

from gateway.account_stack import AccountStack, AccountStacks, build_account_stack, one_account_windows_in_use
from gateway.dedupe.store import Deduplicator
from gateway.observability import tracing
from gateway.observability.metrics import GatewayMetrics
from gateway.operations.tracker import OperationTracker
from gateway.ratelimit.limiter import RateLimiter
from gateway.rest import RestFront
from gateway.rework import ReworkService
from gateway.rls import RateLimitServicer
from gateway.rpc.auth import CallerAuth, server_credentials
from gateway.rpc.server import SERVICE_NAME, build_server
from gateway.rpc.servicer import TolokaGatewayServicer
from gateway.settings import Settings
from gateway.settings.accounts import Account
from gateway.settings.tracing import TracingSettings
from gateway.shared_state import SharedRedis, connect_redis
from gateway.startup_summary import local_target, log_startup
from gateway.toloka.client import TolokaClient

log = logging.getLogger("gateway")

# Health service name that turns NOT_SERVING while Redis is unreachable (overall health stays SERVING).
REDIS_HEALTH_SERVICE = "toloka.gateway.v1.TolokaGateway/redis"


class Gateway:
    """One gateway replica: per Toloka account a Toloka client, limiter, dedupe, poller (`AccountStack`);
    the gRPC server, REST front and metrics they share."""

    def __init__(self, settings: Settings, *, tracing_settings: TracingSettings | None = None) -> None:
        self.settings = settings
        self._tracing = tracing_settings or TracingSettings()
        self.tracer_provider: Any = None  # the SDK's, when the OTEL_* variables turned tracing on
        self.port = 0
        self._emulators: dict[str, Any] = {}  # in-process emulators, by the account that uses one
        self.shared: SharedRedis | None = None
        self._server: Any = None
        self._health: Any = None
        self.accounts: AccountStacks | None = None
        self.metrics = GatewayMetrics()
        self.metrics_port = 0
        self.rest: RestFront | None = None
        self.rest_port = 0
        self._health_updates: set[asyncio.Task[None]] = set()

    @property
    def degraded(self) -> bool:
        """True while the shared state (Redis) is unreachable and every layer runs on its local twin."""
        return self.shared is not None and self.shared.health.down

    @property
    def toloka(self) -> TolokaClient | None:
        """The default account's Toloka client (None before start)."""
        return None if self.accounts is None else self.accounts.default.toloka

    @property
    def limiter(self) -> RateLimiter | None:
        """The default account's rate limiter."""
        return None if self.accounts is None else self.accounts.default.limiter

    @property
    def dedupe(self) -> Deduplicator | None:
        """The default account's dedupe store."""
        return None if self.accounts is None else self.accounts.default.dedupe

    @property
    def operations(self) -> OperationTracker | None:
        """The default account's operation poller."""
        return None if self.accounts is None else self.accounts.default.operations

    @property
    def rework(self) -> ReworkService | None:
        """The default account's rework use cases."""
        return None if self.accounts is None else self.accounts.default.rework

    def _report_degraded(self, down: bool) -> None:
        """Keep the health service `REDIS_HEALTH_SERVICE` in step with the shared health.

        Overall health stays SERVING in degraded mode (the gateway still serves); the named
        service lets probes and operators see that Redis is gone.
        """
        from grpc_health.v1 import health_pb2

        log.warning("redis degraded mode" if down else "redis recovered", extra={"degraded": down})
        if self._health is None:
            return
        status = (
            health_pb2.HealthCheckResponse.NOT_SERVING if down else health_pb2.HealthCheckResponse.SERVING
        )
        update = asyncio.get_running_loop().create_task(self._health.set(REDIS_HEALTH_SERVICE, status))
        self._health_updates.add(update)
        update.add_done_callback(self._health_updates.discard)

    async def _toloka_url(self, account: Account) -> str:
        """The account's Toloka URL, or the URL of an in-process emulator of its own."""
        if not account.toloka.uses_emulator:
            return account.toloka.url
        from gateway.emulator.server import EmulatorServer

        emulator = self._emulators[account.name] = EmulatorServer()
        await emulator.__aenter__()
        return str(emulator.url)

    async def _build_accounts(self, shared: SharedRedis | None) -> AccountStacks:
        """One stack per configured account (each with its Toloka client started)."""
        s = self.settings
        accounts = s.toloka_accounts
        stacks: dict[str, AccountStack] = {}
        for name, account in accounts.accounts.items():
            try:
                stacks[name] = stack = await build_account_stack(
                    account,
                    base_url=await self._toloka_url(account),
                    shared=shared,
                    server=s.server,
                    metrics=self.metrics,
                )
            except BaseException:  # the accounts built so far are closed: stop() never sees them
                await asyncio.gather(*(built.close() for built in stacks.values()))
                raise
            self.metrics.watch_account(
                name,
                limiter=stack.limiter,
                dedupe=stack.dedupe,
                operations=stack.operations,
                pool_lock=stack.rework.lock,
                retry_budget=stack.toloka.retry_budget,
            )
        return AccountStacks(stacks, accounts.default)

    async def _connect_redis(self, url: str) -> SharedRedis:
        """The shared client, ready before concurrent use (a Cluster's slot map loaded).

        An unreachable Redis is not fatal: the first round trip trips the shared health, every
        layer runs on its local twin, and the health's probe brings them back.
        """
        shared = SharedRedis(connect_redis(url, password=self.settings.redis_password or None))
        try:
            await shared.ready()
        except (RedisError, OSError) as e:
            log.warning("redis unreachable at start-up; starting degraded", extra={"error": str(e)})
        shared.health.subscribe(self._report_degraded)
        return shared

    async def _start_rest(self, accounts: AccountStacks, auth: CallerAuth) -> None:
        """The REST front, when `[rest] listen` is set: listening before health says SERVING."""
        s = self.settings
        if not s.rest.listen:
            return
        self.rest = RestFront(
            settings=s.rest,
            auth=auth,
            accounts=accounts.of,
            caller_header=s.server.caller_metadata_key,
            metrics=self.metrics,
        )
        self.rest_port = await self.rest.start()

    async def _report_serving(self, shared: SharedRedis | None) -> None:
        """Health SERVING for the server and the service; the Redis service as the shared health says."""
        from grpc_health.v1 import health_pb2

        for name in ("", SERVICE_NAME):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if shared is not None:
            status = (
                health_pb2.HealthCheckResponse.NOT_SERVING
                if shared.health.down
                else health_pb2.HealthCheckResponse.SERVING
            )
            await self._health.set(REDIS_HEALTH_SERVICE, status)

    def _log_rest(self) -> None:
        """The start-up line of the REST front (after the three summary lines), when it serves."""
        if self.rest is None:
            return
        listen = self.settings.rest.listen
        url = f"http://{local_target(listen, self.rest_port)}"
        log.info(
            f"REST front (Toloka's /api/v1) on {listen}: point toloka-kit at it, "
            f"TolokaClient(<your gateway token>, url={url!r})",
            extra={"rest_listen": listen, "rest_port": self.rest_port},
        )

    async def start(self) -> None:
        """Build every layer and start serving; logs what it runs on."""
        s = self.settings
        self._start_tracing()
        shared = self.shared = await self._connect_redis(s.redis_url) if s.redis_url else None
        accounts = self.accounts = await self._build_accounts(shared)
        if shared is not None:
            await self._warn_of_one_account_windows(shared)
        if s.observability.metrics_listen:
            self.metrics_port = await self.metrics.serve(s.observability.metrics_listen)
        auth = CallerAuth(
            settings=s.auth,
            metadata_key=s.server.caller_metadata_key,
            accounts=[stack.name for stack in accounts],
            default_account=accounts.default.name,
        )
        rls = None
        if s.rls.enabled:  # Envoy's rate-limit service, answered from each account's limiter
            limiters = {stack.name: stack.limiter for stack in accounts}
            rls = RateLimitServicer(
                limiters=limiters, default_account=accounts.default.name, settings=s.rls, metrics=self.metrics
            )
        self._server, self._health, self.port = build_server(
            servicer=TolokaGatewayServicer(accounts=accounts.of),
            auth=auth,
            settings=s.server,
            metrics=self.metrics,
            credentials=server_credentials(s.auth),
            rls=rls,
        )
        await self._start_rest(accounts, auth)
        await self._server.start()
        await self._report_serving(shared)
        default = accounts.default
        emulator = self._emulators.get(default.name)
        log_startup(log, s, default.base_url, emulator, port=self.port, metrics_port=self.metrics_port)
        self._log_accounts()
        self._log_rest()

    async def _warn_of_one_account_windows(self, shared: SharedRedis) -> None:
        """Warn when replicas of a one-account gateway still spend limits no account here counts."""
        try:
            used = await one_account_windows_in_use(self.settings, shared)
        except (RedisError, OSError):
            return  # degraded start: nothing to compare with
        if used:
            log.warning(
                f"Redis holds recent admissions of a one-account gateway (limits {', '.join(used)}) that "
                "none of the [accounts] counts: replicas from before [accounts], or an account renamed. "
                "Name that Toloka account `default` in [accounts] to share its budget and records",
                extra={"limits": used},
            )

    def _log_accounts(self) -> None:
        """With several Toloka accounts, one line naming each and where it goes."""
        if self.accounts is None or len(self.accounts) < 2:
            return
        default = self.accounts.default.name
        named = [
            f"{stack.name}{' (default)' if stack.name == default else ''} at {stack.base_url}"
            for stack in self.accounts
        ]
        log.info(
            f"Toloka accounts: {'; '.join(named)} (callers pick one with x-toloka-account / X-Toloka-Account)",
            extra={"accounts": [stack.name for stack in self.accounts]},
        )

    def _start_tracing(self) -> None:
        """Install the tracer provider the `OTEL_*` variables ask for (before any layer is built)."""
        provider = self.tracer_provider = tracing.build_provider(self._tracing)
        if provider is not None:
            tracing.install(provider)
            log.info(
                f"tracing on: spans exported with {self._tracing.exporter} (OTEL_* variables)",
                extra={"traces_exporter": self._tracing.exporter},
            )

    async def _stop_tracing(self) -> None:
        """Flush the spans still buffered, then make no more (the export may wait for the collector)."""
        provider, self.tracer_provider = self.tracer_provider, None
        if provider is not None:
            tracing.uninstall()
            await asyncio.to_thread(provider.shutdown)

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking calls (health NOT_SERVING), let in-flight calls finish, close everything."""
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(self.settings.server.grace_s if grace is None else grace)
        if self.rest is not None:
            await self.rest.close()
        # Side by side: each account's close may wait for creates whose callers left (its dedupe
        # lease), and those waits must not add up across accounts.
        await asyncio.gather(*(stack.close() for stack in self.accounts or ()))
        await self.metrics.close()
        if self.shared is not None:
            await self.shared.close()  # the health's probe and the client, once, after every layer
        for update in list(self._health_updates):
            update.cancel()
        for emulator in self._emulators.values():
            await emulator.__aexit__(None, None, None)
        await self._stop_tracing()

    async def run_until_signalled(self) -> None:
        """Serve until SIGTERM or SIGINT, then drain: NOT_SERVING for the shutdown delay, then stop.

        During the delay calls are still served, so balancers and meshes that learn of the stop
        from health checks move traffic away before the listener closes. A second signal ends
        the delay at once (an operator's second Ctrl-C).
        """
        signalled = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, signalled.set)
        await self.start()
        await signalled.wait()
        signalled.clear()
        server = self.settings.server
        log.info(
            "shutting down: health NOT_SERVING, still serving",
            extra={"shutdown_delay_s": server.shutdown_delay_s},
        )
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(signalled.wait(), server.shutdown_delay_s)
        log.info("shutting down: draining in-flight calls", extra={"grace_s": server.grace_s})
        # Waits end with the latest state only now: during the delay they were answered as usual.
        for stack in self.accounts or ():
            await stack.operations.drain()
        await self.stop()
        log.info("stopped")
