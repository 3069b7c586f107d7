"""The simulated crowd: seeded performers who take tasks of OPEN pools and submit assignments.

Everything runs on the emulator's clock through `World.schedule`, so a test that advances the
clock by a day sees a day of work at once, and nothing happens while the clock stands still.

- A unit of work is a task (an assignment holding that one task) or a task suite (an assignment holding
  its tasks). A unit is done by `overlap` distinct performers; `remaining_overlap` counts down as
  assignments are issued (rejected ones keep counting, as on Toloka: re-execution raises the overlap).
- Performers take work `pickup_delay_s` after it appears, one assignment at a time, in creation order.
  An assignment is ACTIVE until the performer submits it (after a seeded latency; one that would take
  longer than the pool's `assignment_max_duration_seconds` EXPIRES then, and its task is issued again);
  then SUBMITTED, and
  at once ACCEPTED when the pool has `auto_accept_solutions` (missing means true), else ACCEPTED by
  itself after `auto_accept_period_day` days unless the requester accepted or rejected it.
- When an OPEN pool has no work left and no ACTIVE assignment, it closes with `last_close_reason:
  COMPLETED` (after `auto_close_after_complete_delay_seconds`).
- A performer whose access to a pool was revoked takes no more of its work; its ACTIVE assignments there
  expire and give their overlap back.
- Randomness comes from one `random.Random` per pool seeded with `seed` and the pool id: the same seed
  and the same requests give the same assignments.
"""

from __future__ import annotations

import itertools
import random

from gateway.emulator.crowd_settings import CrowdSettings, answer
from gateway.emulator.quality import passes, skill_keys
from gateway.emulator.wire import JSON
from gateway.emulator.world import World

_DAY_S = 86400.0
_SCAN = 2000  # units looked at past the first unfinished one when a performer seeks work
FINAL = frozenset({"ACCEPTED", "REJECTED", "EXPIRED", "SKIPPED"})


class PoolCrowd:
    """The crowd of one pool: its settings, its random source, and where its work stands."""

    def __init__(self, pool_id: str, settings: CrowdSettings, seed: int) -> None:
        self.pool_id = pool_id
        self.settings = settings
        self.rng = random.Random(f"{seed}:{pool_id}")
        self.busy: set[str] = set()
        self.revoked: set[str] = set()
        self.task_cursor = 0
        self.suite_cursor = 0
        self.requeued: list[str] = []
        self.dispatch_due: float | None = None
        self._performers: list[str] = []

    def performers(self) -> list[str]:
        """The pool's performer ids, in the order they seek work."""
        count = self.settings.performers
        if len(self._performers) != count:
            self._performers = [f"performer-{n:02d}" for n in range(1, count + 1)]
        return self._performers


class Crowd:
    """Every pool's crowd plus the assignments; reset with the state."""

    def __init__(self, state: World) -> None:
        self.state = state
        self.enabled = True
        self.seed = 0
        self.defaults = CrowdSettings()
        self.pool_settings: dict[str, CrowdSettings] = {}
        self.reset()

    def reset(self) -> None:
        """Forget assignments and per-pool progress (settings, seed and the on/off switch are kept)."""
        self.pools: dict[str, PoolCrowd] = {}
        self.assignments: dict[str, JSON] = {}
        self.pool_assignment_ids: dict[str, list[str]] = {}
        self.done_by: dict[str, set[str]] = {}
        self.unit_assignment_ids: dict[str, list[str]] = {}
        self.implicit_suites: dict[str, str] = {}
        self.user_skills: dict[tuple[str, str], JSON] = {}
        self._skill_seq = itertools.count(1)
        self.restrictions: dict[str, JSON] = {}
        self.restriction_seq = itertools.count(1)

    def skills_of(self, user_id: str) -> dict[str, float]:
        """A performer's skills: skill id → value."""
        return {
            skill_id: s["exact_value"] for (user, skill_id), s in self.user_skills.items() if user == user_id
        }

    def set_skill(self, user_id: str, skill_id: str, value: float, stamp: str) -> JSON:
        """Set a performer's skill; returns the UserSkill."""
        skill = self.user_skills.get((user_id, skill_id))
        if skill is None:
            skill_number = next(self._skill_seq)
            skill = {"id": str(skill_number), "skill_id": skill_id, "user_id": user_id, "created": stamp}
            self.user_skills[(user_id, skill_id)] = skill
        skill.update(value=round(value), exact_value=value, modified=stamp)
        return skill

    def eligible(self, pool: JSON, performer: str) -> bool:
        """Whether the performer passes the pool's filter (its skill conditions)."""
        return passes(pool.get("filter"), self.skills_of(performer))

    def reseed(self) -> None:
        """Restart every pool's random source from the current seed."""
        for crowd in self.pools.values():
            crowd.rng = random.Random(f"{self.seed}:{crowd.pool_id}")

    def pool(self, pool_id: str) -> PoolCrowd:
        """The pool's crowd, created on first use with its settings."""
        crowd = self.pools.get(pool_id)
        if crowd is None:
            settings = self.pool_settings.get(pool_id, self.defaults)
            crowd = self.pools[pool_id] = PoolCrowd(pool_id, settings, self.seed)
        return crowd

    def set_defaults(self, settings: CrowdSettings) -> None:
        """New defaults, for every pool without settings of its own (effective from now on)."""
        self.defaults = settings
        for pool_id, crowd in self.pools.items():
            if pool_id not in self.pool_settings:
                crowd.settings = settings

    def configure(self, pool_id: str, settings: CrowdSettings) -> None:
        """Give a pool its own settings (effective from now on)."""
        self.pool_settings[pool_id] = settings
        self.pool(pool_id).settings = settings
        self.work_changed(pool_id)

    # -- finding work ----------------------------------------------------------------------------

    def unit(self, unit_id: str) -> JSON | None:
        """A task or task suite by id."""
        return self.state.tasks.get(unit_id) or self.state.suites.get(unit_id)

    def work_changed(self, pool_id: str, unit_id: str | None = None) -> None:
        """Work appeared or the pool opened: performers look for it after the pickup delay."""
        if not self.enabled or pool_id not in self.state.pools:
            return
        crowd = self.pool(pool_id)
        if unit_id is not None:
            crowd.requeued.append(unit_id)
        due = self.state.now() + crowd.settings.pickup_delay_s
        if crowd.dispatch_due is None or due < crowd.dispatch_due:
            crowd.dispatch_due = due
            self.state.schedule(due, lambda: self._dispatch_at(crowd, due))

    def _dispatch_at(self, crowd: PoolCrowd, due: float) -> None:
        if crowd.dispatch_due == due:
            crowd.dispatch_due = None
            self.dispatch(crowd)

    def dispatch(self, crowd: PoolCrowd, only: str | None = None) -> None:
        """Every idle performer (or just `only`) takes the next unit it may do, if the pool is open."""
        pool = self.state.pools.get(crowd.pool_id)
        if pool is None or pool["status"] != "OPEN" or not self.enabled:
            return
        has_filter = bool(skill_keys(pool.get("filter")))
        for performer in crowd.performers() if only is None else [only]:
            if performer in crowd.busy or performer in crowd.revoked:
                continue
            if has_filter and not self.eligible(pool, performer):
                continue
            unit = self._next_unit(crowd, performer)
            if unit is not None:
                self._issue(crowd, unit, performer)
        self._close_if_complete(crowd)

    def _open(self, unit: JSON) -> bool:
        return bool(unit.get("infinite_overlap")) or unit.get("remaining_overlap", 0) > 0

    def _next_unit(self, crowd: PoolCrowd, performer: str) -> JSON | None:
        state = self.state
        keep: list[str] = []
        found: JSON | None = None
        for unit_id in crowd.requeued:
            unit = self.unit(unit_id)
            if unit is None or not self._open(unit):
                continue
            keep.append(unit_id)
            if found is None and performer not in self.done_by.get(unit_id, ()):
                found = unit
        crowd.requeued = keep
        if found is not None:
            return found
        task_ids = state.pool_task_ids.get(crowd.pool_id, [])
        crowd.task_cursor, found = self._scan(task_ids, crowd.task_cursor, performer, state.tasks)
        if found is not None:
            return found
        suite_ids = state.pool_suite_ids.get(crowd.pool_id, [])
        crowd.suite_cursor, found = self._scan(suite_ids, crowd.suite_cursor, performer, state.suites)
        return found

    def _scan(
        self, ids: list[str], cursor: int, performer: str, units: dict[str, JSON]
    ) -> tuple[int, JSON | None]:
        while cursor < len(ids) and not self._open(units[ids[cursor]]):
            cursor += 1
        for unit_id in ids[cursor : cursor + _SCAN]:
            unit = units[unit_id]
            if self._open(unit) and performer not in self.done_by.get(unit_id, ()):
                return cursor, unit
        return cursor, None

    # -- assignments -----------------------------------------------------------------------------

    def _issue(self, crowd: PoolCrowd, unit: JSON, performer: str) -> None:
        state = self.state
        unit_id = unit["id"]
        state.issued[unit_id] = state.issued.get(unit_id, 0) + 1
        if not unit.get("infinite_overlap"):
            unit["remaining_overlap"] = max(0, unit.get("remaining_overlap", 0) - 1)
        self.done_by.setdefault(unit_id, set()).add(performer)
        pool = state.pools[crowd.pool_id]
        is_suite = "tasks" in unit
        assignment: JSON = {
            "id": state.new_task_id(crowd.pool_id),
            "task_suite_id": unit_id if is_suite else self._implicit_suite(unit_id),
            "pool_id": crowd.pool_id,
            "user_id": performer,
            "status": "ACTIVE",
            "reward": pool.get("reward_per_assignment", 0),
            "tasks": [{**t, "pool_id": crowd.pool_id} for t in unit["tasks"]] if is_suite else [unit],
            "automerged": False,
            "created": state.timestamp(),
            "mixed": False,
            "owner": pool.get("owner"),
        }
        self.assignments[assignment["id"]] = assignment
        self.pool_assignment_ids.setdefault(crowd.pool_id, []).append(assignment["id"])
        self.unit_assignment_ids.setdefault(unit_id, []).append(assignment["id"])
        crowd.busy.add(performer)
        latency = crowd.settings.latency_s * crowd.rng.uniform(0.5, 1.5)
        limit = float(pool.get("assignment_max_duration_seconds") or 0)
        if limit and latency > limit:
            state.schedule(state.now() + limit, lambda: self._time_out(crowd, assignment))
        else:
            state.schedule(state.now() + latency, lambda: self._submit(crowd, assignment))

    def _time_out(self, crowd: PoolCrowd, assignment: JSON) -> None:
        """The performer took longer than `assignment_max_duration_seconds`: the assignment expires."""
        if assignment["status"] != "ACTIVE":
            return
        crowd.busy.discard(assignment["user_id"])
        self._expire(assignment)
        self.dispatch(crowd, assignment["user_id"])

    def _submit(self, crowd: PoolCrowd, assignment: JSON) -> None:
        if assignment["status"] != "ACTIVE":
            return  # expired on a revocation, which freed the performer then
        performer = assignment["user_id"]
        crowd.busy.discard(performer)
        state = self.state
        project = state.projects.get(str(state.pools[crowd.pool_id].get("project_id")), {})
        output_spec = (project.get("task_spec") or {}).get("output_spec") or {}
        assignment["solutions"] = [
            {"output_values": answer(crowd.settings, task, output_spec, crowd.rng)}
            for task in assignment["tasks"]
        ]
        assignment["status"] = "SUBMITTED"
        assignment["submitted"] = state.timestamp()
        pool = state.pools[crowd.pool_id]
        if pool.get("auto_accept_solutions", True):
            assignment["status"] = "ACCEPTED"
            assignment["accepted"] = assignment["submitted"]
        else:
            period = float(pool.get("auto_accept_period_day") or 7) * _DAY_S
            state.schedule(state.now() + period, lambda: self._auto_accept(assignment))
        self.dispatch(crowd, performer)

    def _auto_accept(self, assignment: JSON) -> None:
        if assignment["status"] == "SUBMITTED":
            assignment["status"] = "ACCEPTED"
            assignment["accepted"] = self.state.timestamp()

    def revoke(self, pool_id: str, performer: str, *, bar: bool = True) -> list[JSON]:
        """A performer lost access to a pool (`bar`: for good); returns its submitted and accepted
        assignments there. Its ACTIVE assignments expire and give their overlap back."""
        crowd = self.pool(pool_id)
        if bar:
            crowd.revoked.add(performer)
        crowd.busy.discard(performer)
        done: list[JSON] = []
        for assignment_id in self.pool_assignment_ids.get(pool_id, []):
            assignment = self.assignments[assignment_id]
            if assignment["user_id"] != performer:
                continue
            if assignment["status"] == "ACTIVE":
                self._expire(assignment)
            elif assignment["status"] in ("SUBMITTED", "ACCEPTED"):
                done.append(assignment)
        return done

    def _expire(self, assignment: JSON) -> None:
        assignment["status"] = "EXPIRED"
        assignment["expired"] = self.state.timestamp()
        unit = self.unit(self.unit_id(assignment))
        if unit is not None:
            self.done_by.get(unit["id"], set()).discard(assignment["user_id"])
            self.state.issued[unit["id"]] -= 1
            if not unit.get("infinite_overlap"):
                unit["remaining_overlap"] = unit.get("remaining_overlap", 0) + 1
            self.work_changed(assignment["pool_id"], unit["id"])

    def _implicit_suite(self, task_id: str) -> str:
        """The id of the one-task suite a plain task is issued in (one per task, like Toloka's)."""
        suite_id = self.implicit_suites.get(task_id)
        if suite_id is None:
            suite_id = self.implicit_suites[task_id] = self.state.new_task_id(
                self.state.tasks[task_id]["pool_id"]
            )
        return suite_id

    def unit_id(self, assignment: JSON) -> str:
        """The task or task suite an assignment was issued for."""
        if assignment["task_suite_id"] in self.state.suites:
            return str(assignment["task_suite_id"])
        return str(assignment["tasks"][0]["id"])

    def _has_work(self, crowd: PoolCrowd) -> bool:
        state = self.state
        if crowd.busy or any((u := self.unit(i)) is not None and self._open(u) for i in crowd.requeued):
            return True
        for ids, cursor, units in (
            (state.pool_task_ids.get(crowd.pool_id, []), crowd.task_cursor, state.tasks),
            (state.pool_suite_ids.get(crowd.pool_id, []), crowd.suite_cursor, state.suites),
        ):
            if any(self._open(units[i]) for i in ids[cursor:]):
                return True
        return False

    def _close_if_complete(self, crowd: PoolCrowd) -> None:
        pool = self.state.pools[crowd.pool_id]
        if pool["status"] != "OPEN" or self._has_work(crowd):
            return
        delay = float(pool.get("auto_close_after_complete_delay_seconds") or 0)
        self.state.schedule(self.state.now() + delay, lambda: self._close_completed(crowd))

    def _close_completed(self, crowd: PoolCrowd) -> None:
        pool = self.state.pools.get(crowd.pool_id)
        if pool is None or pool["status"] != "OPEN" or self._has_work(crowd):
            return
        pool["status"] = "CLOSED"
        pool["last_stopped"] = self.state.timestamp()
        pool["last_close_reason"] = "COMPLETED"
        self.state.last_status_change[crowd.pool_id] = "completed"
