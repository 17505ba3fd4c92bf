"""The verdict in words: each check's findings as the sentence the decision log keeps, what
holds a check at the horizon, and the verdict's reason from its checks' sentences."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rollout import sequential as seq
from rollout.checks.base import Assessment
from rollout.checks.errors import LEAN
from rollout.verdict import Check, Status, Verdict

__all__ = ["bar_words", "evidence_words", "in_words", "unresolved", "verdict_of"]


def evidence_words(log_e: float) -> str:
    """An e-value, from its log, as the decision log says it."""
    e = math.exp(min(log_e, 700.0))
    if e >= 1e6:
        return f"{e:.1e}"
    if e >= 10:
        return f"{e:,.0f}"
    return f"{e:.2g}"


def bar_words(log_bar: float) -> str:
    """The e-value a FAIL needs, from its log."""
    return f"{math.exp(log_bar):,.0f}"


def _ms(seconds: float) -> str:
    return "-" if not math.isfinite(seconds) else f"{seconds * 1000:.4g} ms"


def in_words(a: Assessment, status: Status) -> Check:
    v = {k: float(x[0]) for k, x in a.numbers.items()}
    e, b = float(a.evidence[0]), float(a.log_bar[0])
    value = float(a.value[0])
    if a.name == "error_rate":
        saved = f", {v['saved']:.0f} saved by fallback" if v["saved"] else ""
        head = (
            f"candidate {v['xc']:,.0f} errors in {v['nc']:,.0f} requests{saved} vs stable "
            f"{v['xs']:,.0f} in {v['ns']:,.0f}"
        )
        if v["same"]:
            said = (
                f"{head}: evidence against equal rates {evidence_words(e)}, "
                f"rollback above {bar_words(b)}"
            )
        else:
            said = (
                f"{head} (its reference window; rate at most {v['stable_upper']:.2%}): evidence "
                f"the candidate's rate is above that {evidence_words(e)}, "
                f"rollback above {bar_words(b)}"
            )
        if e >= b:
            said += ": worse than stable"
        elif e > LEAN:
            said += ": leaning worse, held until it is proven either way or the horizon"
        if a.threshold is not None:
            upper = float(seq.bernoulli_upper(v["xc"], v["nc"], v["ceiling_bar"]))
            said += (
                f"; against its ceiling {a.threshold:.2%}: evidence "
                f"{evidence_words(v['ceiling_evidence'])}, "
                f"rollback above {bar_words(v['ceiling_bar'])} "
                f"(rate {value:.2%}, at most {upper:.2%})"
            )
            if v["ceiling_evidence"] >= v["ceiling_bar"]:
                said += ": provably above the ceiling"
            elif value > a.threshold:
                said += ": above the ceiling, not yet significantly"
        return Check(a.name, status, value, a.threshold, said, math.exp(min(e, 700)), math.exp(b))
    if a.name == "latency_p99":
        said = f"p99 {_ms(v['p99_c'])} vs stable {_ms(v['p99_s'])}, p50 {_ms(v['med_c'])} vs "
        said += f"{_ms(v['med_s'])}"
        parts = []
        for name, what in (("tail", "1%"), ("median", "half")):
            if f"{name}_line" in v:
                parts.append(
                    f"{v[f'{name}_over']:.0f} of {v['nc']:.0f} answers over "
                    f"{_ms(v[f'{name}_line'])} (stable's {'p99' if name == 'tail' else 'p50'} "
                    f"at most {_ms(v[f'{name}_stable_upper'])}, with the allowance): evidence of "
                    f"more than {what} {evidence_words(v[f'{name}_evidence'])}"
                )
        if "max_line" in v:
            parts.append(
                f"{v['max_over']:.0f} over {_ms(v['max_line'])}: evidence of more than 1% "
                f"{evidence_words(v['max_evidence'])}"
            )
        said += "; " + "; ".join(parts) + f"; rollback above {bar_words(b)}" if parts else ""
        if status is Status.INCONCLUSIVE:
            said += "; slower than allowed, not provably yet"
        return Check(a.name, status, value, a.threshold, said, math.exp(min(e, 700)), math.exp(b))
    if a.name == "psi":
        if v["empty"]:
            said = (
                "no predictions counted (neither the replicas' model_churn_probability nor the "
                "gateway's gateway_served_probability_rows; set thresholds.psi: null to judge "
                "without drift)"
            )
            return Check(a.name, status, None, a.threshold, said)
        said = (
            f"PSI {value:.3f} (at most {v['upper']:.3f}) over {v['nc']:,.0f} / {v['ns']:,.0f} "
            f"candidate / stable predictions: evidence the two differ {evidence_words(e)}, "
            f"rollback above {bar_words(b)} with PSI over {a.threshold}"
        )
        if status is Status.INCONCLUSIVE:
            said += f"; over {a.threshold}, not provably different yet"
        return Check(a.name, status, value, a.threshold, said, math.exp(min(e, 700)), math.exp(b))
    # tier_mix
    if v["empty"]:
        said = (
            "no predictions counted (neither the replicas' model_churn_probability nor the "
            "gateway's gateway_served_probability_rows; set thresholds.tier_shift: null to judge "
            "without the tier mix)"
        )
        return Check(a.name, status, None, a.threshold, said)
    mix = "/".join(f"{v[f'c{i}']:.0%}" for i in range(3))
    mix += " vs stable " + "/".join(f"{v[f's{i}']:.0%}" for i in range(3))
    said = (
        f"low/medium/high {mix}: {value:.1%} of customers in another tier (between "
        f"{v['lower']:.1%} and {v['upper']:.1%}, rollback when even the lower bound is over "
        f"{a.threshold:.0%})"
    )
    if status is Status.INCONCLUSIVE:
        said += f"; over {a.threshold:.0%}, not provably yet"
    return Check(a.name, status, value, a.threshold, said)


def unresolved(a: Assessment) -> str:
    v = {k: float(x[0]) for k, x in a.numbers.items()}
    if a.name == "error_rate":
        said = []
        if a.evidence[0] >= a.log_bar[0] / 2:
            said.append(
                f"errors lean worse than stable's (evidence {evidence_words(a.evidence[0])}, "
                f"rollback above {bar_words(a.log_bar[0])})"
            )
        if a.threshold is not None and v["ceiling_evidence"] < v["ceiling_bar"]:
            upper = float(seq.bernoulli_upper(v["xc"], v["nc"], v["ceiling_bar"]))
            if upper > a.threshold:
                said.append(f"rate {float(a.value[0]):.2%}, at most {upper:.2%}, against the "
                            f"ceiling {a.threshold:.2%}")  # fmt: skip
        return ", ".join(said) or "undecided"
    if a.name == "latency_p99":
        return "the buckets do not prove the candidate's p99 and p50 within the allowance"
    if a.name == "psi":
        return f"PSI {float(a.value[0]):.3f}, at most {v['upper']:.3f} against {a.threshold}"
    return (
        f"{float(a.value[0]):.1%} of customers in another tier, between {v['lower']:.1%} and "
        f"{v['upper']:.1%} against {a.threshold:.0%}"
    )


def verdict_of(checks: Sequence[Check], nc: float, ns: float) -> Verdict:
    for status in (Status.FAIL, Status.WAITING_FOR_SAMPLES, Status.INCONCLUSIVE):
        named = [c for c in checks if c.status is status]
        if named:
            reason = "; ".join(f"{c.name}: {c.detail}" for c in named)
            return Verdict(status, tuple(checks), reason, nc, ns)
    # The headline comparison in words even when all is well: what was compared, how strong.
    errors = next((c for c in checks if c.name == "error_rate"), None)
    said = f" ({errors.detail})" if errors is not None else ""
    return Verdict(Status.PASS, tuple(checks), f"every check passed{said}", nc, ns)
