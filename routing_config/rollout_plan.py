"""The ``rollout:`` section of routing.yaml: the progressive rollout controller's plan.

The gateway validates it with the rest of the file and otherwise ignores it; the controller
(rollout/) reads it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictFloat, StrictInt, field_validator

from routing_config.types import Duration, Frozen, Share

__all__ = [
    "RolloutHorizon",
    "RolloutQuality",
    "RolloutSpec",
    "RolloutThresholds",
    "ShadowBakeSpec",
]


class RolloutThresholds(Frozen):
    """When a candidate fails a check; ``null`` switches a check off. README, "Progressive
    rollout", says why each default is what it is."""

    error_rate: Share | None = 0.01  # ceiling on the candidate's error rate
    significance: Annotated[StrictFloat, Field(gt=0, le=0.5)] = 0.01  # one-sided tests' alpha
    p99_ratio: Annotated[StrictInt | StrictFloat, Field(ge=1)] | None = 1.5
    p99_tolerance_ms: Annotated[StrictInt | StrictFloat, Field(ge=0)] = 10
    p99_max_ms: Annotated[StrictInt | StrictFloat, Field(gt=0)] | None = 1000
    psi: Annotated[StrictInt | StrictFloat, Field(gt=0)] | None = 0.2
    # Largest share of customers the candidate may put in another risk tier than stable does
    # (total variation distance of the two tier mixes).
    tier_shift: Share | None = 0.1


class ShadowBakeSpec(Frozen):
    """Before any customer is served: the candidate shadows ``percent`` of predictions for
    ``duration``, judged on the gateway's shadow comparison (README, "Progressive rollout")."""

    percent: Annotated[StrictInt | StrictFloat, Field(gt=0, le=100)]
    duration: Duration
    min_comparisons: Annotated[StrictInt, Field(ge=1)] = 300  # compared rows before a verdict
    min_tier_agreement: Share = 0.9  # share of rows whose risk tier both versions agree on
    psi: Annotated[StrictInt | StrictFloat, Field(gt=0)] | None = 0.2  # shadow vs client


class RolloutHorizon(Frozen):
    """When a step that has not passed is decided: PASS, FAIL, or halted for the operator
    (README, "Progressive rollout"). Never before ``interval``."""

    duration: Duration | None = None  # the step's longest time; None: 20 times ``interval``
    requests: Annotated[StrictInt, Field(ge=1)] | None = 100_000  # the candidate's, per step


class RolloutQuality(Frozen):
    """The quality gate (README, "Quality"): before the candidate reaches 100% (with a shadow
    bake: before any customer is served) the controller waits for ``min_outcomes`` labelled
    outcomes on both sides, then needs the candidate's AUC provably not below stable's by more
    than ``max_auc_drop`` (always-valid bounds at level 1 - ``alpha``); past ``max_wait``
    without a decision the rollout halts for the operator. Paired on the bake's shadow rows
    when the plan has a shadow bake, unpaired over the canary split otherwise."""

    min_outcomes: Annotated[StrictInt, Field(ge=1)] = 500
    max_auc_drop: Annotated[StrictInt | StrictFloat, Field(ge=0, le=0.5)] = 0.01
    max_wait: Duration = 3600.0
    alpha: Annotated[StrictFloat, Field(gt=0, le=0.5)] = 0.05


class RolloutSpec(Frozen):
    """The progressive rollout controller's plan (the `streamflow rollout` commands); the
    gateway only validates it."""

    candidate: str
    # canary: the candidate's weight steps up; blue_green: the live colour flips to it once,
    # ``interval`` is then the baking period.
    strategy: Literal["canary", "blue_green"] = "canary"
    steps: tuple[StrictInt, ...] | None = None  # canary only
    interval: Duration = 60.0  # time at each step before it may advance
    check_every: Duration = 10.0
    min_requests: Annotated[StrictInt, Field(ge=1)] = 300  # per step, before any verdict
    failure_limit: Annotated[StrictInt, Field(ge=1)] = 2  # failed checks in a row: roll back
    horizon: RolloutHorizon = RolloutHorizon()
    thresholds: RolloutThresholds = RolloutThresholds()
    shadow_bake: ShadowBakeSpec | None = None
    quality: RolloutQuality | None = None

    @field_validator("steps")
    @classmethod
    def _check_steps(cls, steps: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if steps is None:
            return None
        if not steps:
            raise ValueError("at least one step is required, and the last must be 100")
        if any(not 1 <= step <= 100 for step in steps):
            raise ValueError("each step is a candidate weight from 1 to 100")
        if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            raise ValueError("steps must increase")
        if steps[-1] != 100:
            raise ValueError("the last step must be 100 (promotion follows it)")
        return steps
