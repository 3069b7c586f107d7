"""The emulator's aiohttp application: `/api/v1/...` with Toloka's wire behaviour plus `/_emulator/` control.

Every `/api/...` request goes through one middleware that records it, checks `Authorization`, applies
injected faults and turns `ApiError` (and aiohttp's own 404/405) into Toloka-shaped error bodies.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.emulator import (
    aggregation_routes,
    assignment_routes,
    pool_admin,
    pool_routes,
    project_routes,
    restriction_routes,
    skill_routes,
    suite_routes,
    task_routes,
)
from gateway.emulator.control_routes import control_app
from gateway.emulator.coverage import not_emulated
from gateway.emulator.faults import Fault
from gateway.emulator.state import STATE_KEY, EmulatorState, RecordedRequest
from gateway.emulator.wire import ApiError, error_body, json_response

_log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_SCHEMES = ("OAuth", "ApiKey")
_HTTP_CODES = {404: "DOES_NOT_EXIST", 405: "METHOD_NOT_ALLOWED", 413: "ENTITY_TOO_LARGE"}


def _auth_scheme(header: str | None) -> tuple[str | None, str | None]:
    """`(scheme, secret)` of a well-formed `Authorization` header, else `(None, None)`."""
    if not header:
        return None, None
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme not in _SCHEMES or not secret:
        return None, None
    return scheme, secret


def _check_auth(state: EmulatorState, scheme: str | None, secret: str | None) -> None:
    if scheme is None:
        raise ApiError(
            401, "AUTHENTICATION_ERROR", "Authorization header 'OAuth <token>' or 'ApiKey <key>' required"
        )
    if state.valid_api_keys is not None and secret not in state.valid_api_keys:
        raise ApiError(401, "AUTHENTICATION_ERROR", "Invalid credentials")


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without a response; the client sees a server disconnect."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=204)


def _record(state: EmulatorState, request: web.Request, scheme: str | None) -> None:
    query = request.query
    state.record(
        RecordedRequest(
            monotonic=time.monotonic(),
            wall=state.now(),
            method=request.method,
            path=request.path,
            query=dict(query),
            body_size=request.content_length or 0,
            operation_id=query.get("operation_id"),
            auth_scheme=scheme,
            traceparent=request.headers.get("traceparent"),
            act_under=request.headers.get("X-Act-Under-Account-ID"),
        )
    )


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record, authenticate, inject faults and render errors for `/api/` requests."""
    path = request.path
    started = time.perf_counter()
    if not path.startswith("/api/"):
        response = await handler(request)
        _log_request(request, response.status, started)
        return response
    state = request.app[STATE_KEY]
    header_scheme, secret = _auth_scheme(request.headers.get("Authorization"))
    _record(state, request, header_scheme)
    fault: Fault | None = None
    try:
        _check_auth(state, header_scheme, secret)
        fault = state.faults.take(request.method, path)
        if fault is not None:
            if fault.latency_s > 0:
                await asyncio.sleep(fault.latency_s)
            if fault.drop_before_work:
                return _drop(request)
            if fault.status is not None:
                raise fault.error()
        response = await handler(request)
    except ApiError as exc:
        response = exc.to_response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "INTERNAL_ERROR")
        response = json_response(error_body(code, exc.reason), exc.status)
    except Exception:
        _log.exception("emulator handler failed for %s %s", request.method, path)
        response = json_response(error_body("INTERNAL_ERROR", "Internal emulator error"), 500)
    if fault is not None and fault.latency_after_work_s > 0:
        await asyncio.sleep(fault.latency_after_work_s)
    if fault is not None and fault.drop_after_work:
        _log_request(request, 0, started)
        return _drop(request)
    _log_request(request, response.status, started)
    return response


def _log_request(request: web.Request, status: int, started: float) -> None:
    """One info line per request: method, path with query, status (0 = dropped) and duration."""
    if _log.isEnabledFor(logging.INFO):
        elapsed_ms = (time.perf_counter() - started) * 1000
        _log.info("%s %s -> %d in %.1f ms", request.method, request.path_qs, status, elapsed_ms)


def create_app(state: EmulatorState | None = None) -> web.Application:
    """The emulator application serving `/api/v1/...` and `/_emulator/...` under any host."""
    state = state if state is not None else EmulatorState()
    app = web.Application(middlewares=[api_middleware], client_max_size=64 * 1024 * 1024)
    app[STATE_KEY] = state
    r = app.router
    r.add_post("/api/v1/tasks", task_routes.create_tasks)
    r.add_get("/api/v1/tasks", task_routes.list_tasks)
    r.add_get("/api/v1/tasks/{task_id}", task_routes.get_task)
    r.add_patch("/api/v1/tasks/{task_id}", task_routes.patch_task)
    r.add_patch("/api/v1/tasks/{task_id}/set-overlap-or-min", task_routes.patch_task_overlap_or_min)
    r.add_post("/api/v1/task-suites", suite_routes.create_suites)
    r.add_get("/api/v1/task-suites", suite_routes.list_suites)
    r.add_get("/api/v1/task-suites/{suite_id}", suite_routes.get_suite)
    r.add_patch("/api/v1/task-suites/{suite_id}", suite_routes.patch_suite)
    r.add_patch("/api/v1/task-suites/{suite_id}/set-overlap-or-min", suite_routes.patch_suite_overlap_or_min)
    r.add_get("/api/v1/operations", task_routes.list_operations)
    r.add_get("/api/v1/operations/{op_id}", task_routes.get_operation)
    r.add_get("/api/v1/operations/{op_id}/log", task_routes.get_operation_log)
    r.add_get("/api/v1/assignments", assignment_routes.list_assignments)
    r.add_get("/api/v1/assignments/{assignment_id}", assignment_routes.get_assignment)
    r.add_patch("/api/v1/assignments/{assignment_id}", assignment_routes.patch_assignment)
    r.add_put("/api/v1/user-restrictions", restriction_routes.put_restriction)
    r.add_get("/api/v1/user-restrictions", restriction_routes.list_restrictions)
    r.add_get("/api/v1/user-restrictions/{restriction_id}", restriction_routes.get_restriction)
    r.add_delete("/api/v1/user-restrictions/{restriction_id}", restriction_routes.delete_restriction)
    r.add_post("/api/v1/aggregated-solutions/aggregate-by-pool", aggregation_routes.aggregate_by_pool)
    r.add_post("/api/v1/aggregated-solutions/aggregate-by-task", aggregation_routes.aggregate_by_task)
    r.add_get("/api/v1/aggregated-solutions/{op_id}", aggregation_routes.list_results)
    r.add_put("/api/v1/user-skills", skill_routes.set_user_skill)
    r.add_get("/api/v1/user-skills", skill_routes.list_user_skills)
    r.add_get("/api/v1/user-skills/{user_skill_id}", skill_routes.get_user_skill)
    r.add_delete("/api/v1/user-skills/{user_skill_id}", skill_routes.delete_user_skill)
    r.add_post("/api/v1/projects", project_routes.create_project)
    r.add_get("/api/v1/projects", project_routes.list_projects)
    r.add_get("/api/v1/projects/{project_id}", project_routes.get_project)
    r.add_put("/api/v1/projects/{project_id}", project_routes.put_project)
    r.add_post("/api/v1/pools", pool_admin.create_pool)
    r.add_get("/api/v1/pools", pool_admin.list_pools)
    r.add_post("/api/v1/pools/{pool_id}/clone", pool_admin.clone_pool)
    r.add_get("/api/v1/pools/{pool_id}", pool_routes.get_pool)
    r.add_put("/api/v1/pools/{pool_id}", pool_routes.put_pool)
    r.add_patch("/api/v1/pools/{pool_id}", pool_routes.patch_pool)
    r.add_post("/api/v1/pools/{pool_id}/open", pool_routes.pool_open)
    r.add_post("/api/v1/pools/{pool_id}/close", pool_routes.pool_close)
    r.add_post("/api/v1/pools/{pool_id}/close-for-update", pool_routes.pool_close_for_update)
    r.add_post("/api/v1/pools/{pool_id}/archive", pool_routes.pool_archive)
    app.add_subapp("/_emulator/", control_app(state))
    r.add_route("*", "/api/{tail:.*}", not_emulated)
    return app
