"""The controller's step and failure rules, pure: a verdict, the failures in a row and the
step's age in; the action out. On numbers for the controller, on arrays for the simulator
(rollout/simulate.py), which so drives the very rules the controller acts on.

- a FAIL adds one to the failures in a row, anything else resets them; ``failure_limit`` in a
  row roll back; at the step's horizon one FAIL does (the decision is final there);
- a PASS once the step has lasted its interval advances (after the last step: promotes);
- HALTED (the horizon, undecided) halts: the step's weights stay, the operator decides;
- anything else holds.
- The horizon: the step has lasted its horizon, or its interval with ``horizon.requests`` of
  the candidate's requests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from rollout.plan import Plan
from rollout.verdict import FAIL, HALTED, PASS

__all__ = ["ACTIONS", "ADVANCE", "HALT", "HOLD", "ROLLBACK", "StepRules"]

HOLD, ADVANCE, ROLLBACK, HALT = 0, 1, 2, 3
ACTIONS = {HOLD: "hold", ADVANCE: "advance", ROLLBACK: "rollback", HALT: "halt"}

Ints = npt.NDArray[np.int64]
Numbers = npt.ArrayLike


@dataclass(frozen=True, slots=True)
class StepRules:
    interval: float
    horizon: float
    horizon_requests: float | None
    failure_limit: int

    @classmethod
    def of(cls, plan: Plan, step: int) -> StepRules:
        return cls(
            plan.interval(step),
            plan.horizon(step),
            plan.spec.horizon.requests,
            plan.spec.failure_limit,
        )

    def at_horizon(self, waited: Numbers, candidate_requests: Numbers) -> npt.NDArray[np.bool_]:
        age = np.asarray(waited, dtype=float)
        reached = age >= self.horizon
        if self.horizon_requests is not None:
            enough = np.asarray(candidate_requests, dtype=float) >= self.horizon_requests
            reached = reached | ((age >= self.interval) & enough)
        return np.asarray(reached)

    def act(
        self, verdict: Numbers, failures: Numbers, waited: Numbers, horizon: Numbers
    ) -> tuple[Ints, Ints]:
        """The action for each verdict code, and the failures in a row after it."""
        code = np.asarray(verdict)
        failed = code == FAIL
        in_a_row = np.where(failed, np.asarray(failures) + 1, 0)
        final = np.asarray(horizon, dtype=bool)
        rollback = failed & ((in_a_row >= self.failure_limit) | final)
        advance = (code == PASS) & ((np.asarray(waited) >= self.interval) | final)
        action = np.select(
            [rollback, advance, code == HALTED], [ROLLBACK, ADVANCE, HALT], default=HOLD
        )
        return action.astype(np.int64), in_a_row.astype(np.int64)
