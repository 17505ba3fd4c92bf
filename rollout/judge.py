"""The judge: counts of candidate and stable over a window in, one verdict out. Pure.

Every check is anytime-valid: the controller looks at a step's growing counts every
``check_every``, as often as it likes, and the chance that a candidate as good as stable (an
A/A rollout) is ever failed, over the whole rollout, stays at most ``significance``. Each check
weighs its evidence as an e-value (a mixture likelihood ratio, rollout/sequential.py), which a
good candidate makes reach 1/alpha with probability at most alpha however many times it is
looked at (Ville's inequality); its bounds are confidence sequences, valid at every look at once
(Howard, Ramdas, McAuliffe, Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence
sequences", Ann. Statist. 2021; Johari, Koomen, Pekelis, Walsh, "Always valid inference", Oper.
Res. 2022; Lindon and Malek, "Anytime-valid inference for multinomial count data", NeurIPS 2022).

The rollout's ``significance`` is spent once: over the windows the rollout judges (each step,
and the shadow bake), front-loaded (``Budget``), and within a window over the checks by weight
(the error comparison with stable 8, every other test 1), a Bonferroni split, so the sum over
everything the rollout ever tests is ``significance``.

- error rate against stable, on the same window: the conditional test. When both versions fail
  at the same rate, each error is the candidate's with probability equal to its share of the
  requests, whatever the rate, so the owners of the errors are coin flips of known bias and a
  mixture of likelihood ratios over a worse candidate (its odds of owning an error 1.25 to 100
  times the fair odds) is a martingale: exact with a handful of errors, no normal approximation
  and no minimum sample. Against a stable reference from another window (the 100% step, a
  blue/green bake): stable's rate's upper confidence bound, then the same Bernoulli mixture that
  the candidate's rate is above it (alpha halved between the two);
- error rate against the ceiling ``error_rate``: the Bernoulli mixture that the candidate's rate
  is above it;
- latency, from histogram buckets, answers spread evenly within a bucket (as Prometheus's
  histogram_quantile takes them; the one assumption beyond the counts): stable's p99 (and
  median) upper confidence bound U is its quantile at the smallest share of answers that
  provably exceeds 99% (half); the candidate is allowed max(``p99_ratio`` x U,
  U + ``p99_tolerance_ms``); it fails when the share of its answers over that provably exceeds
  1% (half), and when the share over ``p99_max_ms`` provably exceeds 1%. A constant slowdown
  moves the median as much as the tail, while a few answers a busy machine delayed can lift
  stable's p99 over a slower candidate's;
- prediction drift: PSI of the candidate's churn-probability bins against stable's over ``psi``
  (each version's bins its replicas' histogram, or, for a V2 server that exports none, the
  gateway's count of what it served: ``VersionCounts.judged_probability``)
  and the two distributions provably different: per bin, each prediction is the candidate's
  with its overall share under "one distribution", tested by a beta mixture per bin, the
  product over bins a martingale (Lindon and Malek's Dirichlet-multinomial test);
- tier mix: the largest change of one risk tier's share (low < 0.3 <= medium < 0.6 <= high; the
  total variation distance of the two mixes) provably above ``tier_shift``: the normal mixture
  confidence sequence of each tier's difference (plug-in variance, asymptotic: Waudby-Smith,
  Arbour, Sinha, Kennedy, Ramdas, "Time-uniform central limit theory", 2021), from
  ``min_requests`` a side on (asymptotic: on a few dozen customers it is not yet valid).

The verdict: FAIL when any check fails, at any sample size (a proof needs no minimum);
otherwise WAITING_FOR_SAMPLES while either side has fewer than ``min_requests``; INCONCLUSIVE
when a check looks worse than its allowance, not provably; else PASS (nothing looks wrong).

At the step's horizon (``horizon=True``) a verdict that is not PASS is decided with the same
bounds: FAIL when a check is provably outside its allowance, PASS when every check holding the
step is provably inside it (non-inferiority: each confidence bound inside its threshold; a
check that passes stays passed, except short of ``min_requests``, where every check must be
proven; the comparison of error rates with stable has no margin, so inside means its evidence
is under the square root of its bar), else HALTED, which says in one sentence what is
unresolved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from rollout import sequential as seq
from rollout.checks.base import Assessment, Budget, Codes, Counts, Flags
from rollout.checks.drift import assess_drift
from rollout.checks.errors import assess_errors
from rollout.checks.latency import assess_latency
from rollout.checks.tiers import assess_tiers
from rollout.counts import VersionCounts
from rollout.verdict import FAIL, HALTED, PASS, STATUS_OF_CODE, WAITING, Check, Status, Verdict
from rollout.verdict_words import bar_words, evidence_words, in_words, unresolved, verdict_of
from routing_config.rollout_plan import RolloutThresholds, ShadowBakeSpec

__all__ = ["assess", "combine", "enough_of", "judge", "judge_reference", "judge_shadow"]

# Test weights inside a window: the error comparison is the check that must stop a bad
# candidate early, so it has the largest share of the window's alpha.
WEIGHTS = {"error_rate": 8.0, "ceiling": 1.0, "tail": 1.0, "median": 1.0, "max": 1.0,
           "psi": 1.0, "tier_mix": 1.0}  # fmt: skip


# --- the batch: every check on every row ----------------------------------------------------


def assess(
    c: Counts,
    s: Counts,
    t: RolloutThresholds,
    budget: Budget,
    same_window: bool | Flags = True,
    decide: bool = True,
    min_requests: float = 0,
) -> list[Assessment]:
    """Every enabled check, on every row of the batch. ``decide``: also whether each check is
    provably within its allowance (the horizon's question; some of its bounds cost a search,
    so a batch with no row at its horizon may skip them, and its ``within`` is then not
    meaningful)."""
    same = np.broadcast_to(np.asarray(same_window, dtype=bool), c.requests.shape)
    names = ["error_rate"] + (["ceiling"] if t.error_rate is not None else [])
    if t.p99_ratio is not None:
        names += ["tail", "median"]
    if t.p99_max_ms is not None:
        names.append("max")
    if t.psi is not None:
        names.append("psi")
    if t.tier_shift is not None:
        names.append("tier_mix")
    total = sum(WEIGHTS[n] for n in names)

    def bar(name: str) -> float:
        return budget.log_bar(WEIGHTS[name], total)

    ceiling = bar("ceiling") if "ceiling" in names else 0
    out = [assess_errors(c, s, t, same, bar("error_rate"), ceiling)]
    if t.p99_ratio is not None or t.p99_max_ms is not None:
        bars: dict[str, float] = {n: bar(n) for n in ("tail", "median", "max") if n in names}
        out.append(assess_latency(c, s, t, bars, decide))
    if t.psi is not None:
        out.append(assess_drift(c, s, t.psi, bar("psi"), decide))
    if t.tier_shift is not None:
        out.append(assess_tiers(c, s, t.tier_shift, bar("tier_mix"), min_requests))
    return out


def combine(
    checks: Sequence[Assessment], enough: Flags, horizon: bool | Flags = False
) -> tuple[Codes, Codes]:
    """The verdict of each row, and of each check the status it counts with: FAIL at once;
    WAITING below the minimum; the worst of the rest; at the horizon, what is not a PASS is
    decided: PASS when every check that holds the step (not PASS; every check, short of the
    minimum sample) is provably within its allowance, else HALTED."""
    statuses = np.stack([a.status for a in checks]) if checks else np.zeros((0, len(enough)))
    failed = (statuses == FAIL).any(axis=0)
    worst = statuses.max(axis=0, initial=PASS).astype(np.int8)
    lenient = np.where(failed, FAIL, np.where(enough, worst, WAITING)).astype(np.int8)
    # With enough samples, a check that passes stays passed and those holding the step must be
    # proven within; short of the minimum, every check must be.
    passing = (statuses == PASS) & enough
    settled = (np.stack([a.within for a in checks]) | passing) if checks else None
    within = settled.all(axis=0) if settled is not None else np.ones_like(enough)
    at_end = np.broadcast_to(np.asarray(horizon, dtype=bool), lenient.shape)
    decided = np.where(lenient == PASS, PASS, np.where(within, PASS, HALTED))
    final = np.where(at_end & (lenient != FAIL), decided, lenient).astype(np.int8)
    return final, statuses.astype(np.int8)


# --- one rollout: the batch of one row, in words ----------------------------------------------


def judge(
    candidate: VersionCounts,
    stable: VersionCounts,
    thresholds: RolloutThresholds,
    min_requests: int,
    *,
    budget: Budget | None = None,
    same_window: bool = True,
    horizon: bool = False,
) -> Verdict:
    """One verdict with every check in words. ``budget``: this window's share of the
    rollout's significance (all of it by default); ``same_window``: stable's counts are of
    the candidate's window (else a reference from an earlier one); ``horizon``: the step has
    reached its horizon and must be decided."""
    budget = budget or Budget(thresholds.significance)
    c, s = Counts.of(candidate), Counts.of(stable)
    checks = assess(c, s, thresholds, budget, same_window, min_requests=min_requests)
    nc, ns = candidate.requests, stable.requests
    final, statuses = combine(checks, enough_of(c, s, min_requests), horizon)
    status = STATUS_OF_CODE[int(final[0])]
    said = tuple(
        in_words(a, STATUS_OF_CODE[int(code)])
        for a, code in zip(checks, statuses[:, 0], strict=True)
    )
    if status is Status.WAITING_FOR_SAMPLES:
        short = [f"{name} {n:.0f}" for name, n in (("candidate", nc), ("stable", ns))]
        reason = f"{', '.join(short)} requests; {min_requests} each before a pass"
        return Verdict(status, (), reason, nc, ns)
    if status is Status.HALTED:
        open_ = [f"{check.name}: {unresolved(a)}" for a, check in zip(checks, said, strict=True)
                 if not a.within[0]]  # fmt: skip
        reason = "at its horizon, not provably within its allowances: " + "; ".join(open_)
        return Verdict(status, said, reason, nc, ns)
    if horizon and status is Status.PASS and any(c.status is not Status.PASS for c in said):
        reason = "at its horizon, every check provably within its allowance"
        return Verdict(status, said, reason, nc, ns)
    return verdict_of(said, nc, ns)


def enough_of(c: Counts, s: Counts, min_requests: int) -> Flags:
    """Rows where both sides have ``min_requests``: a pass needs that much (a FAIL does not)."""
    return (c.requests >= min_requests) & (s.requests >= min_requests)


# --- the shadow bake and the reference window ----------------------------------------------


def judge_shadow(
    candidate: VersionCounts,
    bake: ShadowBakeSpec,
    significance: float,
    *,
    horizon: bool = False,
) -> Verdict:
    """The shadow bake: the candidate's answers to mirrored requests against the answers the
    clients got, row by row (the gateway's shadow comparison); ``significance`` is the bake's
    share of the rollout's.

    - tier agreement: the share of compared rows whose risk tier both gave; failed when the
      Bernoulli mixture proves it below ``min_tier_agreement`` (anytime-valid), inconclusive
      when it is below but not provably;
    - PSI of the shadow's probability bins against the clients': as the live drift check. The
      two sides are the same customers, so the test, made for independent samples, is
      conservative: paired answers differ less by chance than two groups of customers do.
    Half the significance each when both are on."""
    tiers = candidate.shadow_tiers
    compared = sum(tiers)
    if compared < bake.min_comparisons and not horizon:
        return Verdict(
            Status.WAITING_FOR_SAMPLES,
            (),
            f"{compared:.0f} shadow comparisons; {bake.min_comparisons} before any verdict",
            compared,
            compared,
        )
    side = int(math.isqrt(len(tiers)))
    agreed = sum(tiers[i * side + i] for i in range(side))
    share = agreed / compared if compared else 0.0
    log_bar = math.log((2 if bake.psi is not None else 1) / significance)
    floor = bake.min_tier_agreement
    below = float(seq.log_e_below(agreed, compared, floor))
    lower = float(seq.bernoulli_lower(agreed, compared, log_bar))
    said = (
        f"tiers agree on {share:.1%} of {compared:.0f} compared rows (at least {lower:.1%}): "
        f"evidence of less than {floor:.0%} {evidence_words(below)}, "
        f"rollback above {bar_words(log_bar)}"
    )
    bar_e, e = math.exp(log_bar), math.exp(min(below, 700))
    if below >= log_bar:
        agreement = Check("tier_agreement", Status.FAIL, share, floor, said, e, bar_e)
    elif share < floor:
        detail = f"{said}; below {floor:.0%}, not provably yet"
        agreement = Check("tier_agreement", Status.INCONCLUSIVE, share, floor, detail, e, bar_e)
    else:
        agreement = Check("tier_agreement", Status.PASS, share, floor, said, e, bar_e)
    checks = [agreement]
    within = lower >= floor
    if bake.psi is not None:
        c = np.array([candidate.shadow_bins], dtype=float)
        s = np.array([candidate.shadow_client_bins], dtype=float)
        drift = assess_drift(
            Counts(np.zeros(1), np.zeros(1), np.zeros(1), np.zeros((1, 14)), c),
            Counts(np.zeros(1), np.zeros(1), np.zeros(1), np.zeros((1, 14)), s),
            bake.psi,
            log_bar,
        )
        check = in_words(drift, STATUS_OF_CODE[int(drift.status[0])])
        checks.append(replace(check, name="shadow_psi", detail=check.detail.replace(
            "candidate / stable predictions", "shadow / client answers")))  # fmt: skip
        within = within and bool(drift.within[0])
    verdict = verdict_of(checks, compared, compared)
    if horizon and verdict.status is not Status.PASS and verdict.status is not Status.FAIL:
        if within:
            return Verdict(
                Status.PASS, tuple(checks), "at its horizon, provably within", compared, compared
            )
        return Verdict(
            Status.HALTED,
            tuple(checks),
            "at its horizon, not provably within its allowances: "
            + "; ".join(f"{c.name}: {c.detail}" for c in checks if c.status is not Status.PASS),
            compared,
            compared,
        )
    return verdict


def judge_reference(stable: VersionCounts, min_requests: int) -> Verdict:
    """A window of stable alone, to judge a candidate against where stable will then serve
    nothing (a blue/green flip): it needs only enough of stable's answers."""
    ns = stable.requests
    if ns < min_requests:
        reason = f"stable {ns:.0f} requests; {min_requests} for a reference before the flip"
        return Verdict(Status.WAITING_FOR_SAMPLES, (), reason, 0, ns)
    return Verdict(Status.PASS, (), f"stable's reference: {ns:.0f} requests", 0, ns)
