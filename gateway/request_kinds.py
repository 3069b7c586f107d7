"""Kinds of Toloka request, as the rate limiter sees them.

`TolokaClient` tags every request with one kind; a limit (`gateway.limit_spec.LimitSpec`) lists the
kinds it counts, and `ALL_KINDS` ("*") counts every request (the account-wide limit).
"""

from __future__ import annotations

KIND_CREATE_TASKS = "create_tasks"
KIND_GET_OPERATION = "get_operation"
KIND_GET_OPERATION_LOG = "get_operation_log"
KIND_GET_POOL = "get_pool"
KIND_UPDATE_POOL = "update_pool"
KIND_UPDATE_POOL_OVERLAP = "update_pool_overlap"
KIND_POOL_ACTION = "pool_action"
KIND_LIST_TASKS = "list_tasks"
ALL_KINDS = "*"
