"""The simulated crowd's knobs per pool, and how a performer answers.

`CrowdSettings` (all optional in JSON; a pool without its own settings uses the defaults):

- `performers` (int, default 10): how many distinct performers work in the pool (`performer-01`, ...);
- `answer_policy`: `known_solutions` (default: a task's first known solution, else random), `random`
  (random values from the project's output spec), `from_input` (`answer_fields` maps an output field to
  the input field whose value it copies), `fixed` (`answer_values` is every answer), or `function` (only
  in-process: `answer_function(input_values) -> output_values`);
- `latency_s` (default 60): mean time from taking a task to submitting it; each assignment takes a
  seeded uniform draw of 0.5 to 1.5 times `latency_s`;
- `error_rate` (0..1, default 0): the share of answers replaced by a random different value;
- `pickup_delay_s` (default 5): how long after work appears (tasks, an open, a raised overlap) performers
  take it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from gateway.emulator.wire import JSON

POLICIES = ("known_solutions", "random", "from_input", "fixed", "function")
AnswerFunction = Callable[[JSON], JSON]


@dataclass
class CrowdSettings:
    """One pool's crowd (see the module docstring)."""

    performers: int = 10
    answer_policy: str = "known_solutions"
    answer_fields: dict[str, str] = field(default_factory=dict)
    answer_values: JSON = field(default_factory=dict)
    latency_s: float = 60.0
    error_rate: float = 0.0
    pickup_delay_s: float = 5.0
    answer_function: AnswerFunction | None = None

    def updated(self, changes: JSON) -> CrowdSettings:
        """A copy with the JSON `changes` applied; ValueError naming a bad key or value."""
        known = {f.name for f in fields(self)} - {"answer_function"}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown crowd setting(s): {', '.join(unknown)}")
        merged = {**asdict(self), **changes, "answer_function": self.answer_function}
        new = CrowdSettings(**merged)
        new.validate()
        return new

    def validate(self) -> None:
        """ValueError when a value is out of range."""
        if not isinstance(self.performers, int) or not 0 <= self.performers <= 100_000:
            raise ValueError("performers must be an integer in 0..100000")
        if self.answer_policy not in POLICIES:
            raise ValueError(f"answer_policy must be one of {', '.join(POLICIES)}")
        if self.answer_policy == "function" and self.answer_function is None:
            raise ValueError("answer_policy 'function' needs an in-process answer_function")
        if not 0.0 <= float(self.error_rate) <= 1.0:
            raise ValueError("error_rate must be in 0..1")
        if float(self.latency_s) < 0 or float(self.pickup_delay_s) < 0:
            raise ValueError("latency_s and pickup_delay_s must be >= 0")

    def to_json(self) -> JSON:
        """The JSON view (the in-process function is reported by presence only)."""
        view = asdict(self)
        view["answer_function"] = self.answer_function is not None
        return view


def random_value(spec: JSON, rng: random.Random) -> Any:
    """A random value for one output field spec (toloka-kit's FieldSpec JSON)."""
    kind = spec.get("type", "string")
    allowed = spec.get("allowed_values")
    if allowed:
        return rng.choice(list(allowed))
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "integer":
        return rng.randint(int(spec.get("min_value", 0)), int(spec.get("max_value", 100)))
    if kind == "float":
        return round(rng.uniform(float(spec.get("min_value", 0)), float(spec.get("max_value", 1))), 4)
    if kind == "url":
        return f"https://example.com/{rng.randrange(10**6)}"
    if kind == "coordinates":
        return f"{rng.uniform(-90, 90):.5f},{rng.uniform(-180, 180):.5f}"
    if kind == "json":
        return {"value": rng.randrange(10**6)}
    if kind.startswith("array_"):
        return [random_value({"type": kind.removeprefix("array_")}, rng)]
    return f"answer-{rng.randrange(10**6)}"


def answer(settings: CrowdSettings, task: JSON, output_spec: JSON, rng: random.Random) -> JSON:
    """The output values one performer submits for one task."""
    policy = settings.answer_policy
    values: JSON
    if policy == "fixed":
        values = dict(settings.answer_values)
    elif policy == "from_input":
        inputs = task.get("input_values") or {}
        values = {out: inputs.get(src) for out, src in settings.answer_fields.items()}
    elif policy == "function" and settings.answer_function is not None:
        values = dict(settings.answer_function(dict(task.get("input_values") or {})))
    elif policy == "known_solutions" and task.get("known_solutions"):
        values = dict(task["known_solutions"][0].get("output_values") or {})
    else:
        values = {name: random_value(spec, rng) for name, spec in output_spec.items()}
    if settings.error_rate and rng.random() < settings.error_rate:
        values = _wrong(values, output_spec, rng)
    return values


def _wrong(values: JSON, output_spec: JSON, rng: random.Random) -> JSON:
    """The answer with one field replaced by a different random value (when the spec allows one)."""
    wrong = dict(values)
    for name in sorted(output_spec):
        spec = output_spec[name]
        choices = [v for v in spec.get("allowed_values") or [] if v != wrong.get(name)]
        if choices:
            wrong[name] = rng.choice(choices)
            return wrong
        if spec.get("type") == "boolean" and isinstance(wrong.get(name), bool):
            wrong[name] = not wrong[name]
            return wrong
    if output_spec:
        name = sorted(output_spec)[0]
        wrong[name] = random_value(output_spec[name], rng)
    return wrong
