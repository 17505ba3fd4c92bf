"""The one line a person reads first: is the canary safe? (the status page's top, and
``streamflow status``'s first line).

Pure: the routing in effect, the tail of the rollout controller's decision log, the shadow
report and the clock in; words out. It is computed here, once, and served in GET /stats, so the
page and the CLI say the same words.

- A rollout in progress is said by its last decision: the step ("step 2 of 3", counted from 1
  as the page's plan shows it), the verdict in words, and when the next step comes.
- A finished rollout (promoted, rolled back, aborted) keeps its verdict until the next one
  starts: the decision log still has it, and a page that went blank at the moment of a
  rollback would hide the one thing the operator came to read.
- Outside a rollout, a shadow comparison is judged against what a shadow bake would require
  (the plan's ``shadow_bake`` thresholds, else their defaults), so 80.6% agreement reads as
  failing a bake before anyone starts one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypedDict

from routing_config import RoutingConfig
from routing_config.rollout_plan import RolloutSpec, ShadowBakeSpec

__all__ = ["Glance", "glance"]

Tone = Literal["ok", "wait", "bad", "none"]
TERMINAL = {"promote", "rollback", "abort"}
CHECK_WORDS = {
    "error_rate": "error rate",
    "ceiling": "error-rate ceiling",
    "latency_p99": "p99 latency",
    "tail": "p99 latency",
    "median": "median latency",
    "max": "p99 ceiling",
    "psi": "prediction drift (PSI)",
    "tier_mix": "tier mix",
    "tier_agreement": "tier agreement",
    "quality": "quality gate",
}


class Glance(TypedDict):
    """``state``: no_plan, plan_ready, shadowing, in_progress, halted, promoted, rolled_back;
    ``tone``: how the page colours it (words carry the meaning too)."""

    state: str
    tone: Tone
    text: str


def glance(
    config: RoutingConfig,
    log: Sequence[Mapping[str, Any]] | None,
    shadow: Mapping[str, Any] | None,
    now: float,
) -> Glance:
    """The verdict line for this moment. ``log``: the decision log's last entries (oldest
    first); ``shadow``: GET /shadow's report; ``now``: seconds since the epoch."""
    entries = _last_rollout(log or [])
    last = entries[-1] if entries else None
    plan = config.rollout
    shadow_words = _shadow_words(config, shadow)
    if last is not None and last.get("action") not in TERMINAL and plan is not None:
        return _in_progress(plan, entries, now)
    finished = _finished(last) if last is not None and last.get("action") in TERMINAL else None
    if plan is not None:
        text = f"rollout plan for {plan.candidate} not started: run `streamflow rollout start`"
        if finished is not None:
            text += f" (last rollout: {finished['text']})"
        return {"state": "plan_ready", "tone": "wait", "text": text}
    if finished is not None:
        if shadow_words is not None:
            return {**finished, "text": f"{finished['text']}; {shadow_words[1]}"}
        return finished
    if shadow_words is not None:
        tone, text = shadow_words
        return {"state": "shadowing", "tone": tone, "text": text}
    return {"state": "no_plan", "tone": "none", "text": f"no rollout: {_split(config)}"}


def _last_rollout(log: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The entries of the latest rollout (its plan id; operator lines in between count)."""
    plans = [e.get("plan") for e in log if e.get("plan") is not None]
    if not plans:
        return list(log)
    current = plans[-1]
    first = next(i for i, e in enumerate(log) if e.get("plan") == current)
    return [e for e in log[first:] if e.get("plan") in (None, current)]


def _step_label(entry: Mapping[str, Any], steps: int | None) -> str:
    phase = entry.get("phase")
    if phase == "shadow_bake":
        return "in the shadow bake"
    if phase == "reference":
        return "in stable's reference window"
    step, weight = entry.get("step"), entry.get("weight")
    if isinstance(step, int) and step >= 0 and steps:
        return f"at {weight}% (step {step + 1} of {steps})"
    return f"at {weight}%"


def _checks_named(entry: Mapping[str, Any], status: str) -> str:
    checks = entry.get("checks")
    names = [
        CHECK_WORDS.get(str(c.get("name")), str(c.get("name")).replace("_", " "))
        for c in checks or []
        if isinstance(c, Mapping) and c.get("status") == status
    ]
    return ", ".join(dict.fromkeys(names))


def _in_progress(plan: RolloutSpec, entries: Sequence[Mapping[str, Any]], now: float) -> Glance:
    last = next(
        (e for e in reversed(entries) if e.get("by") != "operator" or e.get("action") == "pause"),
        entries[-1],
    )
    steps = len(plan.steps) if plan.steps else None
    where = f"{plan.candidate} {_step_label(last, steps)}"
    action = last.get("action")
    if action == "halt":
        return {
            "state": "halted",
            "tone": "bad",
            "text": f"{where}: HALTED, an operator must decide (`streamflow rollout resume "
            f"--accept` or `abort`): {last.get('reason', '')}",
        }
    if action == "pause":
        return {"state": "in_progress", "tone": "wait", "text": f"{where}: paused by an operator"}
    verdict = last.get("verdict")
    if verdict == "PASS":
        words = "every check passing"
        started = last.get("step_started")
        if last.get("state") == "waiting_for_outcomes":
            words += ", waiting for outcomes (quality gate)"
        elif isinstance(started, (int, float)):
            left = started + plan.interval - now
            final = last.get("weight") == 100 and last.get("phase") == "step"
            then = "promotion" if final else "next step"
            words += f", {then} in {left:.0f} s" if left > 0 else f", {then} at the next check"
        return {"state": "in_progress", "tone": "ok", "text": f"{where}, {words}"}
    if verdict == "FAIL":
        failing = _checks_named(last, "FAIL") or "a check"
        failures = last.get("failures")
        count = f" ({failures} of {plan.failure_limit} before rollback)" if failures else ""
        return {"state": "in_progress", "tone": "bad", "text": f"{where}: {failing} failing{count}"}
    if verdict == "INCONCLUSIVE":
        held = _checks_named(last, "INCONCLUSIVE") or "a check"
        return {
            "state": "in_progress",
            "tone": "wait",
            "text": f"{where}: held, {held} looking worse, not yet proven either way",
        }
    if verdict == "WAITING_FOR_SAMPLES":
        samples = last.get("samples")
        have = ""
        if isinstance(samples, Mapping):
            c, s = samples.get("candidate"), samples.get("stable")
            if isinstance(c, (int, float)) and isinstance(s, (int, float)):
                have = f" ({c:.0f} and {s:.0f} of the {plan.min_requests} a side a pass needs)"
        return {
            "state": "in_progress",
            "tone": "wait",
            "text": f"{where}: waiting for samples{have}",
        }
    return {
        "state": "in_progress",
        "tone": "wait",
        "text": f"{where}: {last.get('reason') or 'starting'}",
    }


def _finished(last: Mapping[str, Any]) -> Glance:
    action = last.get("action")
    candidate = last.get("candidate") or "the candidate"
    if action == "promote":
        return {
            "state": "promoted",
            "tone": "ok",
            "text": f"{candidate} promoted: stable since {_hhmmss(last.get('time'))}",
        }
    where = (
        "in the shadow bake" if last.get("phase") == "shadow_bake" else f"at {last.get('weight')}%"
    )
    if action == "abort":
        why = last.get("reason") or "by an operator"
        return {
            "state": "rolled_back",
            "tone": "bad",
            "text": f"{candidate} aborted {where}: {why}",
        }
    failing = _checks_named(last, "FAIL")
    why = failing or str(last.get("reason") or "a failed check")
    return {
        "state": "rolled_back",
        "tone": "bad",
        "text": f"{candidate} rolled back {where}: {why}",
    }


def _hhmmss(stamp: Any) -> str:
    text = str(stamp or "")
    return text[11:19] + " UTC" if len(text) >= 19 else text or "-"


def _shadow_words(
    config: RoutingConfig, report: Mapping[str, Any] | None
) -> tuple[Tone, str] | None:
    """A running shadow comparison judged as a shadow bake would judge it."""
    spec = config.shadow
    if spec is None or spec.percent <= 0:
        return None
    bake = config.rollout.shadow_bake if config.rollout is not None else None
    fields = ShadowBakeSpec.model_fields
    min_rows = bake.min_comparisons if bake else fields["min_comparisons"].default
    floor = bake.min_tier_agreement if bake else fields["min_tier_agreement"].default
    psi_limit = bake.psi if bake else fields["psi"].default
    pairs = [p for p in (report or {}).get("pairs") or [] if isinstance(p, Mapping)]
    pairs = [p for p in pairs if p.get("primary") != spec.version]
    version = f"{spec.version} shadowed at {spec.percent:g}%"
    if not pairs:
        return "wait", f"{version}: no comparison yet"
    pair = max(pairs, key=lambda p: p.get("rows") or 0)
    rows = int(pair.get("rows") or 0)
    agreement = (pair.get("tier_agreement") or {}).get("percent")
    psi = (pair.get("psi") or {}).get("value")
    if rows < min_rows:
        return "wait", f"{version}: {rows} of the {min_rows} compared rows a bake needs"
    if isinstance(agreement, (int, float)) and agreement < floor * 100:
        return "bad", (
            f"{version}: tier agreement {agreement:.1f}% is below the {floor * 100:g}% a bake "
            "requires"
        )
    if psi_limit is not None and isinstance(psi, (int, float)) and psi > psi_limit:
        return "bad", f"{version}: PSI {psi:.3f} is above the {psi_limit:g} a bake allows"
    said = f"tier agreement {agreement:.1f}%" if isinstance(agreement, (int, float)) else ""
    if isinstance(psi, (int, float)):
        said += f"{' and ' if said else ''}PSI {psi:.3f}"
    return "ok", f"{version}: {said or 'comparisons'} within what a bake requires"


def _split(config: RoutingConfig) -> str:
    if config.mode == "blue_green" and config.blue_green is not None:
        live = config.blue_green.live
        return f"{live} ({getattr(config.blue_green, live)}) live"
    weights = config.weights()
    shares = [f"{name} {weight}%" for name, weight in weights.items() if weight > 0]
    return ", ".join(shares) + f" (stable {config.stable})"
