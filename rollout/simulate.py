"""The rollout simulator: thousands of rollouts on simulated counters, judged by the controller's
own decision code, the old rule and the new side by side.

    python -m rollout.simulate            # every scenario, 2,000 rollouts a row (a few minutes)
    python -m rollout.simulate --quick    # 300 a row

What runs is the real thing: ``rollout.judge.assess`` and ``combine`` (the checks and the
verdict the controller's ``judge`` puts in words) and ``rollout.rules.StepRules`` (the
controller's failure, step and horizon rules), on arrays of rollouts at once. What is simulated
is only the traffic, one check at a time rather than one request at a time: per check, each
rollout's requests are Poisson at its rate, split between the versions by the step's weight;
errors binomial; latency a log-normal (5 ms median) binned into the gateway's buckets;
churn probabilities beta-distributed, binned into the model servers' ten bins. The clock is
simulated: a step's window begins at its write, a check comes every ``check_every``.

The old rule is the judge before this change (rollout/legacy_judge.py, one rollout at a time)
with the same step and failure rules and no horizon: a step it cannot decide is cut off after
``OLD_STEP_LIMIT_S`` and counted undecided.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import stats

from rollout import legacy_judge
from rollout.checks.base import Budget, Counts
from rollout.checks.tiers import TIER_BINS
from rollout.counts import LATENCY_BOUNDS, PROBABILITY_BOUNDS, VersionCounts
from rollout.judge import assess, combine, enough_of
from rollout.plan import Plan
from rollout.rules import ADVANCE, HALT, ROLLBACK, StepRules
from rollout.verdict import CODE_OF_STATUS
from routing_config.rollout_plan import RolloutSpec, RolloutThresholds

__all__ = ["Outcome", "Scenario", "run", "simulate", "README_PLAN"]

Array = npt.NDArray[np.float64]

# The README's plan: steps of a minute, a check every 10 s, the default thresholds.
README_PLAN = RolloutSpec.model_validate(
    {
        "candidate": "v2",
        "steps": (5, 25, 50, 100),
        "interval": "1m",
        "check_every": "10s",
        "min_requests": 300,
        "failure_limit": 2,
    }
)
OLD_STEP_LIMIT_S = 1800.0  # the measurement: 30 minutes at one step is "never ends"
STABLE_BETA = (2.0, 5.0)  # churn probabilities: mean 0.29, most customers low or medium risk
LATENCY_MEDIAN_S, LATENCY_SIGMA = 0.005, 0.5

# Outcomes.
RUNNING, ROLLED_BACK, PROMOTED, HALTED, UNDECIDED = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class Scenario:
    name: str
    rate: float = 100.0  # client requests a second
    base_error: float = 0.002  # stable's error rate
    error_ratio: float = 1.0  # the candidate's error rate over stable's
    extra_ms: float = 0.0  # the candidate's constant slowdown
    candidate_beta: tuple[float, float] = STABLE_BETA  # the candidate's churn probabilities
    check_every: float | None = None  # None: the plan's
    thresholds: RolloutThresholds | None = None  # None: the plan's
    rollouts: int = 2000
    goal: str = ""  # what the row must show, in words

    @property
    def aa(self) -> bool:
        return self.error_ratio == 1 and self.extra_ms == 0 and self.candidate_beta == STABLE_BETA


@dataclass
class Outcome:
    scenario: Scenario
    rule: str  # "old" | "new"
    outcome: npt.NDArray[np.int64]
    candidate_requests: Array  # before the decision
    seconds: Array  # to the decision
    step_at_end: npt.NDArray[np.int64]
    wall_s: float = 0.0

    def share(self, which: int) -> tuple[float, float, float]:
        """The share of rollouts that ended so, with its 95% Clopper-Pearson interval."""
        k, n = int((self.outcome == which).sum()), len(self.outcome)
        ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
        return k / n, float(ci.low), float(ci.high)

    def requests_at(self, which: int) -> tuple[float, float]:
        picked = self.candidate_requests[self.outcome == which]
        if not len(picked):
            return math.nan, math.nan
        return float(np.median(picked)), float(np.percentile(picked, 95))

    def seconds_at(self, which: int) -> float:
        picked = self.seconds[self.outcome == which]
        return float(np.median(picked)) if len(picked) else math.nan


def bucket_probabilities(extra_ms: float) -> Array:
    """The share of answers in each latency bucket (+Inf last): log-normal plus a constant."""
    bounds = np.array(LATENCY_BOUNDS) - extra_ms / 1000
    cdf = stats.lognorm.cdf(np.maximum(bounds, 0), LATENCY_SIGMA, scale=LATENCY_MEDIAN_S)
    return np.diff(np.concatenate([[0.0], cdf, [1.0]]))


def bin_probabilities(beta: tuple[float, float]) -> Array:
    cdf = stats.beta.cdf(np.array(PROBABILITY_BOUNDS[:-1]), *beta)
    return np.diff(np.concatenate([[0.0], cdf, [1.0]]))


@dataclass
class _Side:
    error: float
    buckets: Array
    bins: Array


@dataclass
class _Window:
    """Counts since the step began, per rollout, for one version."""

    requests: Array
    errors: Array
    latency: Array  # per bucket, not cumulative
    bins: Array

    @classmethod
    def empty(cls, n: int) -> _Window:
        return cls(np.zeros(n), np.zeros(n), np.zeros((n, len(LATENCY_BOUNDS) + 1)),
                   np.zeros((n, len(PROBABILITY_BOUNDS))))  # fmt: skip

    def add(
        self, rng: np.random.Generator, rows: npt.NDArray[np.int64], n: Array, side: _Side
    ) -> None:
        self.requests[rows] += n
        self.errors[rows] += rng.binomial(n.astype(np.int64), side.error)
        self.latency[rows] += rng.multinomial(n.astype(np.int64), side.buckets)
        self.bins[rows] += rng.multinomial(n.astype(np.int64), side.bins)

    def reset(self, rows: npt.NDArray[np.int64]) -> None:
        for part in self.parts():
            part[rows] = 0

    def counts(self, rows: npt.NDArray[np.int64]) -> Counts:
        return Counts(
            self.requests[rows],
            self.errors[rows],
            np.zeros(len(rows)),
            np.cumsum(self.latency[rows], axis=1),
            self.bins[rows],
        )

    def take(self, rows: npt.NDArray[np.int64], other: _Window) -> None:
        """Stable's window that ended: the reference of a step where stable serves nothing."""
        for mine, theirs in zip(self.parts(), other.parts(), strict=True):
            mine[rows] = theirs[rows]

    def parts(self) -> tuple[Array, ...]:
        return (self.requests, self.errors, self.latency, self.bins)


Decide = Callable[
    [Counts, Counts, npt.NDArray[np.int64], npt.NDArray[np.bool_]], npt.NDArray[np.int8]
]


def _new_rule(spec: RolloutSpec) -> Decide:
    def decide(
        c: Counts, s: Counts, step: npt.NDArray[np.int64], horizon: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.int8]:
        out = np.empty(len(step), dtype=np.int8)
        for k in np.unique(step):
            rows = step == k
            budget = Budget.of(spec, int(k))
            same = np.asarray(Plan(spec, "v1").weight(int(k)) < 100)
            decide_now = bool(horizon[rows].any())
            checks = assess(
                c.rows(rows),
                s.rows(rows),
                spec.thresholds,
                budget,
                same,
                decide_now,
                spec.min_requests,
            )
            enough = enough_of(c.rows(rows), s.rows(rows), spec.min_requests)
            out[rows], _ = combine(checks, enough, horizon[rows])
        return out

    return decide


def _old_rule(spec: RolloutSpec) -> Decide:
    def decide(
        c: Counts, s: Counts, step: npt.NDArray[np.int64], horizon: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.int8]:
        del step, horizon  # the old judge spent all of significance at every check, no horizon
        out = np.empty(len(c.requests), dtype=np.int8)
        for i in range(len(out)):
            verdict = legacy_judge.judge(_one(c, i), _one(s, i), spec.thresholds, spec.min_requests)
            out[i] = CODE_OF_STATUS[verdict.status]
        return out

    return decide


def _one(c: Counts, i: int) -> VersionCounts:
    return VersionCounts(
        requests=float(c.requests[i]),
        errors=float(c.errors[i]),
        latency=tuple(float(x) for x in c.latency[i]),
        probability=tuple(float(x) for x in c.probability[i]),
    )


def simulate(
    scenario: Scenario, rule: str, spec: RolloutSpec = README_PLAN, seed: int = 0
) -> Outcome:
    """``scenario.rollouts`` rollouts under ``rule`` ("old" or "new")."""
    started = time.monotonic()
    update: dict[str, object] = {}
    if scenario.check_every is not None:
        update["check_every"] = float(scenario.check_every)
    if scenario.thresholds is not None:
        update["thresholds"] = scenario.thresholds
    spec = spec.model_copy(update=update)
    plan = Plan(spec, "v1")
    rng = np.random.default_rng(seed)
    n = scenario.rollouts
    stable = _Side(scenario.base_error, bucket_probabilities(0.0), bin_probabilities(STABLE_BETA))
    candidate = _Side(
        min(1.0, scenario.base_error * scenario.error_ratio),
        bucket_probabilities(scenario.extra_ms),
        bin_probabilities(scenario.candidate_beta),
    )
    decide = _new_rule(spec) if rule == "new" else _old_rule(spec)
    step = np.zeros(n, dtype=np.int64)
    started_at = np.zeros(n)
    failures = np.zeros(n, dtype=np.int64)
    outcome = np.zeros(n, dtype=np.int64)
    judged = np.zeros(n)  # candidate requests in steps that ended
    ended_at = np.full(n, np.nan)
    win_c, win_s = _Window.empty(n), _Window.empty(n)
    reference = _Window.empty(n)  # stable's last window where it served
    weights = np.array(plan.steps, dtype=float)
    now = 0.0
    every = spec.check_every
    while (outcome == RUNNING).any():
        now += every
        rows = np.flatnonzero(outcome == RUNNING)
        total = rng.poisson(scenario.rate * every, len(rows)).astype(float)
        share = weights[step[rows]] / 100
        nc = rng.binomial(total.astype(np.int64), share).astype(float)
        win_c.add(rng, rows, nc, candidate)
        win_s.add(rng, rows, total - nc, stable)
        waited = now - started_at[rows]
        same = share < 1
        s_counts = win_s.counts(rows)
        ref = reference.counts(rows)
        s_counts = Counts(
            np.where(same, s_counts.requests, ref.requests),
            np.where(same, s_counts.errors, ref.errors),
            s_counts.saved,
            np.where(same[:, None], s_counts.latency, ref.latency),
            np.where(same[:, None], s_counts.probability, ref.probability),
        )
        c_counts = win_c.counts(rows)
        rules = StepRules.of(plan, 0)
        if rule == "old":
            rules = StepRules(rules.interval, math.inf, None, rules.failure_limit)
        horizon = rules.at_horizon(waited, c_counts.requests)
        verdict = decide(c_counts, s_counts, step[rows], horizon)
        action, failures[rows] = rules.act(verdict, failures[rows], waited, horizon)
        done = np.zeros(len(rows), dtype=bool)
        back = action == ROLLBACK
        halt = action == HALT
        advance = action == ADVANCE
        last = step[rows] == plan.last_step
        outcome[rows[back]] = ROLLED_BACK
        outcome[rows[halt]] = HALTED
        outcome[rows[advance & last]] = PROMOTED
        stuck = (waited >= OLD_STEP_LIMIT_S) & ~(back | halt | advance)
        outcome[rows[stuck]] = UNDECIDED
        done = back | halt | (advance & last) | stuck
        judged[rows] += np.where(done, c_counts.requests, 0.0)
        ended_at[rows[done]] = now
        on = rows[advance & ~last]
        if len(on):
            judged[on] += win_c.requests[on]
            keep = on[weights[step[on]] < 100]
            reference.take(keep, win_s)
            step[on] += 1
            started_at[on] = now
            failures[on] = 0
            win_c.reset(on)
            win_s.reset(on)
    return Outcome(scenario, rule, outcome, judged, ended_at, step, time.monotonic() - started)


def _psi(beta: tuple[float, float]) -> float:
    e, a = bin_probabilities(STABLE_BETA), bin_probabilities(beta)
    return float(((a - e) * np.log(a / e)).sum())


def _tier_shift(beta: tuple[float, float]) -> float:
    e, a = bin_probabilities(STABLE_BETA), bin_probabilities(beta)
    tiers = TIER_BINS
    return float(max(abs(a[list(t)].sum() - e[list(t)].sum()) for t in tiers))


def beta_for(target: float, measure: Callable[[tuple[float, float]], float]) -> tuple[float, float]:
    """A candidate Beta(a, 5) whose churn probabilities are ``target`` away from stable's."""
    low, high = STABLE_BETA[0], 12.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if measure((mid, STABLE_BETA[1])) < target else (low, mid)
    return (low, STABLE_BETA[1])


def scenarios(rollouts: int) -> list[Scenario]:
    drift = beta_for(0.25, _psi)
    borderline = beta_for(0.11, _tier_shift)
    bad = max(300, rollouts // 4)
    return [
        Scenario("A/A, base error 0.1%, 100 req/s", base_error=0.001, rollouts=rollouts),
        Scenario("A/A, base error 0.2%, 100 req/s", rollouts=rollouts),
        Scenario("A/A, base error 0.5%, 100 req/s", base_error=0.005, rollouts=rollouts),
        Scenario("A/A, base error 0.2%, 20 req/s", rate=20, rollouts=rollouts),
        Scenario("A/A, base error 0.2%, 1,000 req/s", rate=1000, rollouts=rollouts),
        Scenario("A/A, base error 0.2%, check_every 1s", check_every=1.0, rollouts=rollouts),
        Scenario("A/A, no errors, 10 req/s", base_error=0.0, rate=10, rollouts=bad),
        Scenario(
            "A/A, base error 5% (ceiling 10%), 2,000 req/s",
            base_error=0.05,
            rate=2000,
            thresholds=RolloutThresholds(error_rate=0.1),
            rollouts=bad,
        ),
        Scenario(
            "10x errors (0.5% -> 5%)",
            base_error=0.005,
            error_ratio=10,
            rollouts=bad,
            goal="rolled back after a median of <= 200 candidate requests",
        ),  # fmt: skip
        Scenario(
            "10x errors (0.2% -> 2%)",
            error_ratio=10,
            rollouts=bad,
            goal="rolled back after a median of <= 200 candidate requests",
        ),  # fmt: skip
        Scenario(
            "3x errors (0.2% -> 0.6%)", error_ratio=3, rollouts=bad, goal="rolled back in >= 95%"
        ),  # fmt: skip
        Scenario(
            "+30 ms on a 5 ms median", extra_ms=30, rollouts=bad, goal="rolled back in >= 95%"
        ),  # fmt: skip
        Scenario(
            f"probabilities shifted to PSI {_psi(drift):.2f}",
            candidate_beta=drift,
            rollouts=bad,
            goal="rolled back before the 50% step in >= 95%",
        ),  # fmt: skip
        Scenario(
            f"PSI {_psi(borderline):.2f}, {_tier_shift(borderline):.0%} of customers change tier",
            candidate_beta=borderline,
            rollouts=bad,
            goal="every rollout ends",
        ),
    ]


@dataclass
class Row:
    cells: list[str] = field(default_factory=list)


def _pct(share: tuple[float, float, float]) -> str:
    p, low, high = share
    return f"{p:.1%} ({low:.1%}-{high:.1%})"


def _n(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:,.0f}"


def describe(old: Outcome, new: Outcome) -> list[list[str]]:
    rows = []
    for result in (old, new):
        ended = ROLLED_BACK if not result.scenario.aa else PROMOTED
        median, p95 = result.requests_at(ended)
        before_half = (result.outcome == ROLLED_BACK) & (result.step_at_end < 2)
        undecided = result.share(UNDECIDED)
        rows.append([
            result.scenario.name if result.rule == "old" else "",
            result.rule,
            f"{len(result.outcome):,}",
            _pct(result.share(ROLLED_BACK)),
            _pct(result.share(PROMOTED)),
            _pct(result.share(HALTED)) + (f", {undecided[0]:.1%} never" if undecided[0] else ""),
            f"{_n(median)} / {_n(p95)}",
            f"{before_half.mean():.1%}",
            _n(result.seconds_at(PROMOTED)),
        ])  # fmt: skip
    return rows


HEADER = ["scenario", "rule", "rollouts", "rolled back (95% CI)", "promoted", "halted",
          "candidate requests before the decision (median / p95)", "rolled back before 50%",
          "time to promote (median s)"]  # fmt: skip


def run(
    rollouts: int, say: Callable[[str], None] = print, markdown: bool = True
) -> list[tuple[Outcome, Outcome]]:
    say(
        f"plan: steps {list(README_PLAN.steps or ())}, interval {README_PLAN.interval:g}s, "
        f"check_every {README_PLAN.check_every:g}s, min_requests {README_PLAN.min_requests}, "
        f"failure_limit {README_PLAN.failure_limit}, default thresholds (significance "
        f"{README_PLAN.thresholds.significance}); horizon "
        f"{Plan(README_PLAN, 'v1').horizon(0):g}s a step"
    )
    say("candidate requests before the decision: at rollback (bad candidates) or promotion (A/A)")
    say("| " + " | ".join(HEADER) + " |")
    say("|" + "---|" * len(HEADER))
    results = []
    for i, scenario in enumerate(scenarios(rollouts)):
        old = simulate(scenario, "old", seed=2 * i)
        new = simulate(scenario, "new", seed=2 * i + 1)
        for cells in describe(old, new):
            say("| " + " | ".join(cells) + " |")
        results.append((old, new))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rollout.simulate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--rollouts",
        type=int,
        default=2000,
        help="per A/A row (a quarter, at least 300, for the others)",
    )
    parser.add_argument("--quick", action="store_true", help="300 rollouts a row")
    args = parser.parse_args(argv)
    run(300 if args.quick else args.rollouts, lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
