"""What the emulator's parts (the crowd, quality control, task writes) need from its state.

They depend on these protocols, not on `state.py`, which builds them: so no import runs back up
from the parts to the state that owns them. `EmulatorState` satisfies `World`, `Crowd` satisfies
`CrowdView`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from gateway.emulator.wire import JSON


class CrowdView(Protocol):
    """What quality control reads of the simulated crowd and asks of it."""

    @property
    def assignments(self) -> dict[str, JSON]:
        """Every assignment by id."""
        ...

    @property
    def unit_assignment_ids(self) -> dict[str, list[str]]:
        """A task's (or suite's) assignment ids, in the order they were issued."""
        ...

    def unit(self, unit_id: str) -> JSON | None:
        """The task or task suite with this id."""
        ...

    def unit_id(self, assignment: JSON) -> str:
        """The id of the task or suite an assignment is for."""
        ...

    def revoke(self, pool_id: str, performer: str, *, bar: bool = True) -> list[JSON]:
        """End a performer's access to a pool; their assignments there, as they were."""
        ...


class World(Protocol):
    """The emulator's resources, clock and scheduler, as its parts use them."""

    @property
    def pools(self) -> dict[str, JSON]: ...
    @property
    def projects(self) -> dict[str, JSON]: ...
    @property
    def tasks(self) -> dict[str, JSON]: ...
    @property
    def suites(self) -> dict[str, JSON]: ...
    @property
    def pool_task_ids(self) -> dict[str, list[str]]: ...
    @property
    def pool_suite_ids(self) -> dict[str, list[str]]: ...
    @property
    def issued(self) -> dict[str, int]: ...
    @property
    def last_status_change(self) -> dict[str, str]: ...
    @property
    def crowd(self) -> CrowdView: ...

    def now(self) -> float:
        """The emulator's current time."""
        ...

    def timestamp(self) -> str:
        """The current time in Toloka's date format."""
        ...

    def schedule(self, when: float, action: Callable[[], None]) -> None:
        """Run `action` once the emulator's time reaches `when`."""
        ...

    def new_task_id(self, pool_id: str) -> str:
        """A fresh task (or suite) id for a pool."""
        ...

    def store_task(self, view: JSON) -> None:
        """Make a task visible in listings."""
        ...

    def store_tasks(self, views: list[JSON]) -> None:
        """Make tasks visible in listings, in order."""
        ...

    def work_changed(self, pool_id: str, unit_id: str | None = None) -> None:
        """Tell the crowd that a pool's work or status changed."""
        ...
