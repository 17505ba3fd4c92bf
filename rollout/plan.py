"""The plan: routing.yaml's ``rollout:`` section (routing_config/'s RolloutSpec, validated as
the gateway validates it) with the stable version it is judged against."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from routing_config import LoadedConfig, RolloutHorizon, RolloutSpec

__all__ = ["HORIZON_INTERVALS", "Plan", "plan_of"]

# A step's default horizon, in intervals: long enough for a step to gather the errors that prove
# a candidate with 3 times stable's error rate bad at 5% of 100 requests a second (ten intervals
# were not: the simulator halted 10% of them), short enough that nobody waits an afternoon.
HORIZON_INTERVALS = 20


@dataclass(frozen=True, slots=True)
class Plan:
    spec: RolloutSpec
    stable: str

    @property
    def candidate(self) -> str:
        return self.spec.candidate

    @property
    def id(self) -> str:
        """Names this plan in the decision log: the same section (and stable) is the same
        rollout, so a restarted controller picks up its own history and no one else's."""
        section = self.spec.model_dump()
        if self.spec.horizon == RolloutHorizon():
            del section["horizon"]  # a plan written before horizons keeps its id
        if self.spec.quality is None:
            del section["quality"]  # nor does a plan without a quality gate change its id
        text = json.dumps({"stable": self.stable, **section}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def blue_green(self) -> bool:
        return self.spec.strategy == "blue_green"

    @property
    def steps(self) -> tuple[int, ...]:
        """The candidate's share at each step; a blue/green flip is one step to 100."""
        return self.spec.steps if self.spec.steps is not None else (100,)

    @property
    def last_step(self) -> int:
        return len(self.steps) - 1

    @property
    def first_step(self) -> int:
        """-1 is a phase before step 0, with no customer served: the shadow bake when the plan
        has one, else, when step 0 leaves stable nothing to serve (a blue/green flip), a
        window of stable alone, the reference the candidate is then judged against."""
        if self.spec.shadow_bake is not None or self.steps[0] == 100:
            return -1
        return 0

    @property
    def before_first(self) -> str:
        """What step -1 is: ``shadow_bake`` or ``reference``."""
        return "shadow_bake" if self.spec.shadow_bake is not None else "reference"

    def quality_gate_at(self, step: int) -> bool:
        """Whether leaving ``step`` needs the quality gate's PASS first (once per rollout):
        the shadow bake's end when the plan has one (no customer served yet), else the step
        before the candidate reaches 100%."""
        if self.spec.quality is None:
            return False
        if self.spec.shadow_bake is not None:
            return step == -1
        return self.weight(step) < 100 and step < self.last_step and self.weight(step + 1) == 100

    @property
    def quality_design(self) -> str:
        """One design a rollout: paired on the bake's shadow rows, else unpaired."""
        return "paired" if self.spec.shadow_bake is not None else "unpaired"

    def weight(self, step: int) -> int:
        return self.steps[step] if step >= 0 else 0

    def weights(self, step: int) -> dict[str, int]:
        weight = self.weight(step)
        return {self.stable: 100 - weight, self.candidate: weight}

    def shadow_percent(self, step: int) -> float | None:
        """The candidate's shadow share at ``step``: the bake's, 0 after it, None without one."""
        bake = self.spec.shadow_bake
        if bake is None:
            return None
        return bake.percent if step < 0 else 0

    def interval(self, step: int) -> float:
        """How long a step lasts at least: the shadow bake's duration, else ``interval``."""
        bake = self.spec.shadow_bake
        return bake.duration if bake is not None and step < 0 else self.spec.interval

    def horizon(self, step: int) -> float:
        """The step's longest time: when it has not passed by then, it is decided."""
        horizon = self.spec.horizon.duration
        interval = self.interval(step)
        return max(interval, horizon if horizon is not None else HORIZON_INTERVALS * interval)

    def step_for(self, weight: int) -> int:
        """The step a candidate weight stands at: the last step not above it (the first step
        when it is below every step)."""
        below = [i for i, step in enumerate(self.steps) if step <= weight]
        return below[-1] if below else 0


def plan_of(loaded: LoadedConfig) -> Plan | None:
    config = loaded.config
    if config.rollout is None:
        return None
    return Plan(config.rollout, config.stable)
