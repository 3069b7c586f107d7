"""All in-memory state of the Toloka emulator, with an injectable clock and behaviour knobs.

Seeded pools (re-created by `reset()`; pass `seed_default_pools=False` to start empty):

- "1": CLOSED, `auto_accept_solutions: true`, `defaults.default_overlap_for_new_tasks: 3`, no tasks,
  no quality control.
- "2": OPEN, holds 3 tasks, `auto_accept_solutions: false` (`auto_accept_period_day: 7`), stays OPEN
  for 3 days after the crowd has done its tasks (`auto_close_after_complete_delay_seconds`), quality control
  with a GOLDEN_SET config (`RESTRICTION_V2` on `incorrect_answers_rate GTE 50`) and a USERS_ASSESSMENT
  rework config (`pool_access_revoked_reason EQ RESTRICTION` → `CHANGE_OVERLAP {delta 1, open_pool true}`),
  both with server-assigned collector uuids.
- "3": ARCHIVED.
- "4": CLOSED, `auto_accept_solutions: false`, `defaults` without `default_overlap_for_new_tasks`.

Project "1" (ACTIVE, a one-field `image` → `label` task spec) holds them all.

Pools seeded later with `seed_pool()` get ids "5", "6", ... unless an `id` is given.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from gateway.emulator.crowd import Crowd
from gateway.emulator.faults import Fault, FaultSet
from gateway.emulator.operations import Operation
from gateway.emulator.pools import assign_collector_uuids, default_pool, default_project
from gateway.emulator.wire import JSON, iso

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One API request as it arrived (control requests are not recorded; the secret never is)."""

    monotonic: float
    wall: float
    method: str
    path: str
    query: dict[str, str]
    body_size: int
    operation_id: str | None
    auth_scheme: str | None
    traceparent: str | None = None  # W3C trace context, when the request carried one
    act_under: str | None = None  # X-Act-Under-Account-ID, when the request carried one

    def to_json(self) -> JSON:
        """A JSON view for the control API."""
        return asdict(self)


class EmulatorState:
    """Pools, tasks, operations, faults and the request log of one emulated Toloka account.

    Knobs (plain attributes, changeable at any time): `operation_duration_s` (task batches; 0 = final in the
    first response), `pool_operation_duration_s` (POOL.* operations), `valid_api_keys` (None = any key),
    `overlap_changes_per_hour` (PUTs changing overlap settings per pool per sliding hour),
    `reopen_after_update_s` (automatic reopen after close-for-update), `max_recorded_requests` (None =
    unbounded request log). Nothing runs in the background: due effects are applied by `advance()`,
    which every API handler calls first.
    """

    def __init__(
        self,
        *,
        clock: Clock = time.time,
        operation_duration_s: float = 1.0,
        pool_operation_duration_s: float = 0.2,
        valid_api_keys: set[str] | None = None,
        overlap_changes_per_hour: int = 10,
        reopen_after_update_s: float = 900.0,
        seed_default_pools: bool = True,
        max_recorded_requests: int | None = None,
    ) -> None:
        self.clock = clock
        self.operation_duration_s = operation_duration_s
        self.pool_operation_duration_s = pool_operation_duration_s
        self.valid_api_keys = valid_api_keys
        self.overlap_changes_per_hour = overlap_changes_per_hour
        self.reopen_after_update_s = reopen_after_update_s
        self.seed_default_pools = seed_default_pools
        self.max_recorded_requests = max_recorded_requests
        self.clock_offset_s = 0.0
        self._event_time: float | None = None
        self._stamp: tuple[float, str] = (float("nan"), "")  # the last timestamp(), by its instant
        self.faults = FaultSet()
        self.requests: list[RecordedRequest] = []
        self.crowd = Crowd(self)
        self.work_hooks: list[Callable[[str, str | None], None]] = [self.crowd.work_changed]
        self._reset_data()

    # -- time ------------------------------------------------------------------------------------

    def now(self) -> float:
        """The emulator's current time: the injected clock plus any `advance_clock` offset; while a due
        effect runs, the instant it was due at (so a chain of effects keeps its own timeline)."""
        if self._event_time is not None:
            return self._event_time
        return self.clock() + self.clock_offset_s

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's time forward (for control clients that cannot inject a clock)."""
        self.clock_offset_s += seconds
        self.advance()

    def schedule(self, when: float, action: Callable[[], None]) -> None:
        """Run `action` the first time the state is observed at or after `when`."""
        heapq.heappush(self._timers, (when, next(self._timer_seq), action))

    def advance(self) -> None:
        """Apply every side effect that is due (finished operations, automatic pool reopening)."""
        timers = self._timers
        if not timers:
            return
        now = self.now()
        outer = self._event_time
        try:
            while timers and timers[0][0] <= now:
                when, _, action = heapq.heappop(timers)
                self._event_time = when
                action()
        finally:
            self._event_time = outer

    # -- data ------------------------------------------------------------------------------------

    def _reset_data(self) -> None:
        self.crowd.reset()
        self.pools: dict[str, JSON] = {}
        self.tasks: dict[str, JSON] = {}
        self.pool_task_ids: dict[str, list[str]] = {}
        self.projects: dict[str, JSON] = {}
        self.suites: dict[str, JSON] = {}
        self.pool_suite_ids: dict[str, list[str]] = {}
        self.issued: dict[str, int] = {}
        self.operations: dict[str, Operation] = {}
        self.pool_locks: dict[str, str] = {}
        self.last_status_change: dict[str, str] = {}
        self.overlap_changes: dict[str, list[float]] = {}
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = itertools.count()
        self._task_seq = itertools.count(1)
        self._epoch_tag = int(self.now()) & 0xFFFFFFFF
        self._id_heads: dict[str, str] = {}  # per pool: the part of its task ids before the sequence
        self._next_pool_id = 1
        if self.seed_default_pools:
            self._seed_defaults()

    def reset(self) -> None:
        """Forget pools, tasks, operations, faults and the request log, undo every clock advance, and
        re-seed; knobs are kept."""
        self.clock_offset_s = 0.0
        self.faults.clear()
        self.requests.clear()
        self._reset_data()

    def add_fault(self, fault: Fault) -> Fault:
        """Inject a fault (see `Fault`)."""
        return self.faults.add(fault)

    def clear_faults(self) -> None:
        """Remove all injected faults."""
        self.faults.clear()

    def seed_pool(self, **fields: Any) -> JSON:
        """Create a pool directly (no API call); returns a copy of its JSON. Status is CLOSED unless given."""
        pool_id = str(fields.pop("id", None) or self._take_pool_id())
        pool = default_pool(pool_id, self.now())
        pool.update(copy.deepcopy(fields))
        assign_collector_uuids(pool)
        self.pools[pool_id] = pool
        self.pool_task_ids.setdefault(pool_id, [])
        if pool_id.isdigit():
            self._next_pool_id = max(self._next_pool_id, int(pool_id) + 1)
        self.work_changed(pool_id)
        return copy.deepcopy(pool)

    def _take_pool_id(self) -> str:
        while str(self._next_pool_id) in self.pools:
            self._next_pool_id += 1
        return str(self._next_pool_id)

    def new_task_id(self, pool_id: str) -> str:
        """A task id `<pool id as 10 hex>--<24 hex>`; within a pool ids sort as strings in creation order."""
        head = self._id_heads.get(pool_id)
        if head is None:
            prefix = int(pool_id) if pool_id.isdigit() else hash(pool_id) & 0xFFFFFFFFFF
            head = self._id_heads[pool_id] = f"{prefix:010x}--{self._epoch_tag:08x}"
        return f"{head}{next(self._task_seq):016x}"

    def store_task(self, view: JSON) -> None:
        """Make a task visible in listings."""
        self.tasks[view["id"]] = view
        self.pool_task_ids.setdefault(view["pool_id"], []).append(view["id"])

    def store_tasks(self, views: list[JSON]) -> None:
        """Make tasks visible in listings, in order."""
        tasks, by_pool = self.tasks, self.pool_task_ids
        pool_id, ids = None, []
        for view in views:
            tasks[view["id"]] = view
            if view["pool_id"] != pool_id:
                pool_id = view["pool_id"]
                ids = by_pool.setdefault(pool_id, [])
            ids.append(view["id"])

    def store_suite(self, view: JSON) -> None:
        """Make a task suite visible in listings."""
        self.suites[view["id"]] = view
        self.pool_suite_ids.setdefault(view["pool_id"], []).append(view["id"])

    def pool_has_tasks(self, pool_id: str) -> bool:
        """Whether any task or task suite exists in the pool."""
        return bool(self.pool_task_ids.get(pool_id)) or bool(self.pool_suite_ids.get(pool_id))

    def work_changed(self, pool_id: str, unit_id: str | None = None) -> None:
        """Tell the crowd that a pool's work or status changed (`unit_id`: a task or suite that has
        overlap left again)."""
        for hook in self.work_hooks:
            hook(pool_id, unit_id)

    def seed_project(self, **fields: Any) -> JSON:
        """Create a project directly (no API call); returns it. Its id is the next free number unless given."""
        project_id = str(fields.pop("id", None) or _next_free(self.projects))
        project = default_project(project_id, self.timestamp())
        project.update(copy.deepcopy(fields))
        self.projects[project_id] = project
        return project

    def new_pool_id(self) -> str:
        """The next free pool id."""
        return self._take_pool_id()

    def record(self, request: RecordedRequest) -> None:
        """Append to the request log, dropping the oldest entries beyond `max_recorded_requests` (if set)."""
        requests = self.requests
        requests.append(request)
        cap = self.max_recorded_requests
        if cap is not None and len(requests) > cap + max(1, cap // 10):
            del requests[: len(requests) - cap]

    def add_operation(self, op: Operation) -> None:
        """Register an operation and schedule its side effects at its finish time."""
        self.operations[op.id] = op
        self.schedule(op.finishes_at, lambda: self._finish(op))

    def finish_operations_now(self) -> int:
        """Make every unfinished operation final now (in submission order); returns how many."""
        now = self.now()
        pending = sorted(
            (op for op in self.operations.values() if not op.is_finished(now)), key=lambda o: o.submitted_at
        )
        for op in pending:
            op.duration_s = max(0.0, now - op.submitted_at)
            self._finish(op)
        self.advance()
        return len(pending)

    def _finish(self, op: Operation) -> None:
        if not op.finished_effects_done:
            op.finished_effects_done = True
            # Dropped once run: it refers to the operation (a cycle) and to the batch's inputs.
            effects, op.on_finish = op.on_finish, None
            if effects is not None:
                effects()

    def timestamp(self) -> str:
        """The current time in Toloka's date format (formatted once per instant: the tasks of one
        batch, stored while its operation finishes, share it)."""
        now = self.now()
        if now != self._stamp[0]:
            self._stamp = (now, iso(now))
        return self._stamp[1]

    # -- seeds -----------------------------------------------------------------------------------

    def _seed_defaults(self) -> None:
        self.seed_project(id="1")
        self.seed_pool(
            id="1", defaults={"default_overlap_for_new_task_suites": 3, "default_overlap_for_new_tasks": 3}
        )
        self.seed_pool(
            id="2",
            status="OPEN",
            last_started=self.timestamp(),
            auto_accept_solutions=False,
            auto_close_after_complete_delay_seconds=_THREE_DAYS_S,
            quality_control={"configs": [_golden_set_config(), _users_assessment_config()]},
        )
        for n in range(3):
            view = {
                "id": self.new_task_id("2"),
                "pool_id": "2",
                "input_values": {"image": f"http://example.com/{n}.png"},
                "overlap": 3,
                "infinite_overlap": False,
                "remaining_overlap": 3,
                "created": self.timestamp(),
            }
            self.store_task(view)
        self.seed_pool(id="3", status="ARCHIVED", last_close_reason="MANUAL", last_stopped=self.timestamp())
        self.seed_pool(
            id="4", auto_accept_solutions=False, defaults={"default_overlap_for_new_task_suites": 1}
        )


_THREE_DAYS_S = 259200  # Toloka's maximum: the seeded open pool stays OPEN after the crowd is done


def _golden_set_config() -> JSON:
    return {
        "collector_config": {"type": "GOLDEN_SET", "parameters": {"history_size": 10}},
        "rules": [
            {
                "conditions": [
                    {"key": "total_answers_count", "operator": "GTE", "value": 5},
                    {"key": "incorrect_answers_rate", "operator": "GTE", "value": 50},
                ],
                "action": {
                    "type": "RESTRICTION_V2",
                    "parameters": {"scope": "PROJECT", "duration": 1, "duration_unit": "DAYS"},
                },
            }
        ],
    }


def _users_assessment_config() -> JSON:
    return {
        "collector_config": {"type": "USERS_ASSESSMENT"},
        "rules": [
            {
                "conditions": [
                    {"key": "pool_access_revoked_reason", "operator": "EQ", "value": "RESTRICTION"}
                ],
                "action": {"type": "CHANGE_OVERLAP", "parameters": {"delta": 1, "open_pool": True}},
            }
        ],
    }


def _next_free(items: dict[str, JSON]) -> int:
    return max((int(k) for k in items if k.isdigit()), default=0) + 1


STATE_KEY = web.AppKey("emulator_state", EmulatorState)
