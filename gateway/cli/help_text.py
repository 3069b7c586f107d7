"""What `--help` says for each command: a description, an example, and the variables the command reads.

Kept apart from the parsers so the wording can be read (and reviewed) in one place.
"""

from __future__ import annotations

CONNECTION_VARIABLES = """\
environment:
  GATEWAY_TARGET   gateway address HOST:PORT (default 127.0.0.1:50051), like --target
  GATEWAY_CALLER   caller id sent as x-caller-id metadata (default toloka-gateway-cli), like --caller
  GATEWAY_TOKEN    bearer token (gateways in token auth mode), like --token
  GATEWAY_ACCOUNT  Toloka account (gateways serving several), like --account
  The connection flags --target, --caller, --account, --token, --timeout and the TLS ones (--tls-ca,
  --tls-cert, --tls-key, --tls-server-name) may come before or after the command;
  `toloka-gateway client --help` describes them."""

EXIT_CODES = """\
exit codes: 0 done; 1 the call failed (gRPC error, or the operation ended FAIL); 2 bad usage or input
(nothing was sent); 130 interrupted (the operation goes on: `toloka-gateway client wait ID` resumes)."""

SERVE = """\
Run the gateway: gRPC on GATEWAY_LISTEN ([::]:50051), in front of the Toloka API.

With no TOLOKA_API_KEY it calls a built-in Toloka emulator (seeded pools 1-4, no key needed); with
TOLOKA_API_KEY set it calls the real Toloka (TOLOKA_URL, default https://toloka.dev). With no
REDIS_URL it keeps its state in process (one replica only). Its first log lines say which."""

SERVE_EPILOG = """\
examples:
  toloka-gateway serve                                   # built-in emulator, in-process state
  TOLOKA_API_KEY=... TOLOKA_URL=https://sandbox.toloka.dev toloka-gateway serve
  REDIS_URL=redis://127.0.0.1:6379/0 toloka-gateway serve --listen 127.0.0.1:50052

environment (flags win over variables, variables over the --config file):
  TOLOKA_API_KEY        Toloka credential (or TOLOKA_API_KEY_FILE); set: real Toloka, unset: the emulator
  TOLOKA_URL            Toloka base URL, or `emulator`
  REDIS_URL             shared state for several replicas (REDIS_PASSWORD if the URL has none)
  GATEWAY_LISTEN        gRPC address              GATEWAY_METRICS_LISTEN  Prometheus address
  GATEWAY_CONFIG        TOML config file          GATEWAY_SHUTDOWN_DELAY  drain time after SIGTERM
  GATEWAY_LOG_LEVEL     log level (INFO)          GATEWAY_AUTH_MODE       metadata, token or mtls
  OTEL_EXPORTER_OTLP_ENDPOINT  an OTLP/gRPC collector: turns tracing on (docs/tracing.md)
  Every flag, variable and config key: docs/configuration.md."""

EMULATOR = """\
Run the Toloka emulator alone as an HTTP server: Toloka's /api/v1/... for tasks, operations and pools,
any API key accepted. Point a gateway (TOLOKA_URL=http://HOST:PORT with any TOLOKA_API_KEY) or your own
tests at it."""

EMULATOR_CONTROL = """\
control endpoints (no Authorization needed), under /_emulator/:
  GET  requests?method=POST&path=/api/v1/tasks   the request log
  POST faults | GET faults | DELETE faults         inject, list, clear faults
  POST pools                                       seed another pool
  POST config                                      knobs, e.g. {"instant_operations": true}
  POST clock/advance {"seconds": s}                move the emulator's time forward
  POST operations/finish                           finish every running operation now
  POST reset                                       back to the seeded pools

example:
  toloka-gateway emulator --listen 127.0.0.1:8080 &
  curl -s -H 'Authorization: ApiKey any' http://127.0.0.1:8080/api/v1/pools/1"""

CLIENT = """\
Call a running gateway from a shell (start one with `make run` or `toloka-gateway serve`).

examples:
  toloka-gateway client create-tasks tasks.jsonl --pool-id 1 --allow-defaults --wait
  toloka-gateway client wait OPERATION_ID --log
  toloka-gateway client get-rework-rules 1 --json > rules.json
  toloka-gateway client set-rework-rules 1 rules.json
  toloka-gateway client quota --kind create_tasks

Any of --tls-ca, --tls-cert, --tls-key switches to a TLS channel:

  toloka-gateway client --token "$TOKEN" --tls-ca ca.crt wait OPERATION_ID"""

CREATE_TASKS = """\
Create tasks from FILE and print the operation_id at once; with --wait, follow the operation (progress
on stderr) and print its outcome per task.

FILE holds one task per line (JSON lines) or one JSON array of tasks; '-' reads stdin. A task is
Toloka's task JSON: input_values (required), and optionally overlap, pool_id (default --pool-id),
known_solutions, message_on_unknown_solution, infinite_overlap, baseline_solutions. Every task is
checked before anything is sent. A task without overlap needs --allow-defaults (the pool's default)."""

CREATE_TASKS_EPILOG = """\
examples:
  echo '{"input_values": {"image": "https://example.com/1.png"}, "overlap": 1}' \\
    | toloka-gateway client create-tasks - --pool-id 1 --wait
  toloka-gateway client create-tasks tasks.jsonl --pool-id 1 --allow-defaults --wait --json > done.json

"""

IMPORT_TASKS = """\
Stream FILE (one task per line, any number of lines) through ImportTasks: the gateway cuts it into
batches of up to 10,000 tasks, creates each once, and answers each batch as Toloka accepts it (a bar
on stderr); the summary goes to stdout. The import's operation_id is printed first: run the same
command again with --operation-id and the same file after any interruption, and only what was not
created is sent. A line that is not a valid task stops the import there; nothing after it is sent."""

IMPORT_TASKS_EPILOG = """\
examples:
  toloka-gateway client import-tasks tasks.jsonl --pool-id 1 --allow-defaults
  toloka-gateway client import-tasks tasks.jsonl --pool-id 1 --operation-id 6b1f... --timeout 3600

"""

WAIT = """\
Wait for an operation (e.g. the operation_id create-tasks printed) until it ends or --timeout passes,
and print its state; --log adds the outcome per task."""

WAIT_EPILOG = """\
example:
  toloka-gateway client wait 6f0c2a4e-8d6b-4c1f-9a3e-2b7d5e6f8a90 --log --timeout 600

"""

GET_RULES = """\
Print a pool's re-execution (rework) rules: which Toloker events give its tasks more overlap.
--json prints {"rules": [...]}, the input of set-rework-rules."""

GET_RULES_EPILOG = """\
example:
  toloka-gateway client get-rework-rules 2 --json > rules.json

"""

SET_RULES = """\
Make a pool's re-execution rules exactly those in FILE (a closed pool stays closed; an open pool is
closed for the change and reopened, unless --refuse-if-open). FILE: {"rules": [...]} as
get-rework-rules --json prints it; '-' reads stdin."""

SET_RULES_EPILOG = """\
examples:
  echo '{"rules": [{"restriction": {}, "delta": 1}]}' | toloka-gateway client set-rework-rules 1 -
  toloka-gateway client set-rework-rules 1 rules.json --refuse-if-open

"""


QUOTA = """\
Show every rate limit that applies to you (the caller --caller or --token names) in your Toloka
account (--account, or your first): the account's global limits and your own quota, each with its
capacity per sliding window, what is left of it now and, for a limit with nothing left, when its
window frees the next unit. Nothing is spent. --kind shows only the limits that count that request
kind (create_tasks, get_operation, get_pool, ...)."""

QUOTA_EPILOG = """\
examples:
  toloka-gateway client quota
  toloka-gateway client quota --kind create_tasks --json
  toloka-gateway client --account sandbox quota

"""


def epilog(specific: str) -> str:
    """A subcommand's epilog: its examples, then the variables and exit codes every client command shares."""
    return f"{specific}{CONNECTION_VARIABLES}\n\n{EXIT_CODES}"


def emulator_epilog() -> str:
    """The emulator's seeded pools, read from a fresh emulator state, then its control endpoints."""
    from gateway.emulator.state import EmulatorState
    from gateway.startup_summary import describe_pool, seeded_pools

    state = EmulatorState()
    pools = "\n".join(f"  {describe_pool(p)}" for p in seeded_pools(state.pools, state.pool_task_ids))
    return f"seeded pools (again after POST /_emulator/reset):\n{pools}\n\n{EMULATOR_CONTROL}"
