"""The REST front: Toloka's own REST API on its own listener, so unchanged toloka-kit code (and any
HTTP client) reaches Toloka through the gateway's limits, dedupe and poller, with the gateway's key.

    front.py        RestFront: the listener, and around every request the Call, auth, the path
                    check, Toloka-shaped refusals, the call log line and metrics
    passthrough.py  any /api/v1 request through TolokaClient's choke point, relayed back (streamed)
    shared_paths.py what gRPC also serves, by the same use cases: POST /tasks with an operation_id
                    (the CreateTasks dedupe), GET /operations/{id} (the shared poller)
    suite_creates.py POST /task-suites with an operation_id, through the same dedupe
    relay_protocol.py what the front needs of the Toloka client
    routes.py       a request's kind (for the limits) and path template (for logs and metrics)
    errors.py       the ONLY domain error -> REST answer map (Toloka's error body)
"""

from gateway.rest.front import RestFront
from gateway.rest.shared_paths import SharedPaths

__all__ = ["RestFront", "SharedPaths"]
