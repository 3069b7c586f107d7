"""Kinds of Toloka request, as the rate limiter sees them.

`TolokaClient` tags every request with one kind; a limit (`gateway.limit_spec.LimitSpec`) lists the
kinds it counts, and `ALL_KINDS` ("*") counts every request (the account-wide limit). The REST front
classifies each passthrough request into one of these (`gateway.rest.routes`), so every row of
Toloka's per-method table (create pools and projects, clone pools, task suites, aggregation, skills,
bonuses, messages) can be given its own limit in config; an endpoint with no kind of its own is
`KIND_OTHER`, counted by the account-wide limit only.
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
# Rows of Toloka's per-method table, for the REST front's passthrough.
KIND_CREATE_TASK_SUITES = "create_task_suites"
KIND_CREATE_POOL = "create_pool"  # pools, training pools
KIND_CREATE_PROJECT = "create_project"
KIND_CLONE_POOL = "clone_pool"  # pools, training pools
KIND_AGGREGATE = "aggregate"  # /aggregated-solutions/*
KIND_SET_USER_SKILL = "set_user_skill"  # PUT /user-skills
KIND_CREATE_SKILL = "create_skill"
KIND_ISSUE_BONUS = "issue_bonus"
KIND_MESSAGE = "message"  # message threads: compose
KIND_READ = "read"  # any other GET
KIND_OTHER = "other"  # any other write
ALL_KINDS = "*"

# Every kind a request can have (ALL_KINDS is not one: it is what a limit counts).
REQUEST_KINDS = frozenset(
    {
        KIND_CREATE_TASKS,
        KIND_GET_OPERATION,
        KIND_GET_OPERATION_LOG,
        KIND_GET_POOL,
        KIND_UPDATE_POOL,
        KIND_UPDATE_POOL_OVERLAP,
        KIND_POOL_ACTION,
        KIND_LIST_TASKS,
        KIND_CREATE_TASK_SUITES,
        KIND_CREATE_POOL,
        KIND_CREATE_PROJECT,
        KIND_CLONE_POOL,
        KIND_AGGREGATE,
        KIND_SET_USER_SKILL,
        KIND_CREATE_SKILL,
        KIND_ISSUE_BONUS,
        KIND_MESSAGE,
        KIND_READ,
        KIND_OTHER,
    }
)
