"""The verdict line: plain values in, the words a person reads first out."""

from __future__ import annotations

from typing import Any

from gateway.glance import glance
from routing_config import parse_config

BASE = """\
service: s
stable: v2.3.1
mode: canary
versions:
  v2.3.1: {replicas: [http://a:8000]}
  v2.4.0: {replicas: [http://b:8000]}
canary:
  weights: {v2.3.1: 50, v2.4.0: 50}
"""
PLAN = "rollout: {candidate: v2.4.0, steps: [10, 50, 100], interval: 30s}\n"
NOW = 1_000_000.0


def config(extra: str = "") -> Any:
    return parse_config(BASE + extra).config


def entry(action: str, **fields: Any) -> dict[str, Any]:
    return {
        "time": "2026-12-03T12:00:00.000+00:00",
        "by": "controller",
        "plan": "p1",
        "candidate": "v2.4.0",
        "step": 1,
        "weight": 50,
        "phase": "step",
        "step_started": NOW - 18,
        "failures": 0,
        "action": action,
        **fields,
    }


def pair(rows: int, agreement: float, psi: float) -> dict[str, Any]:
    return {
        "primary": "v2.3.1",
        "shadow": "v2.4.0",
        "rows": rows,
        "tier_agreement": {"percent": agreement},
        "psi": {"value": psi},
    }


def test_no_plan_says_the_split() -> None:
    said = glance(config(), None, None, NOW)
    assert said == {
        "state": "no_plan",
        "tone": "none",
        "text": "no rollout: v2.3.1 50%, v2.4.0 50% (stable v2.3.1)",
    }


def test_a_passing_step_says_when_the_next_comes() -> None:
    log = [entry("advance"), entry("hold", verdict="PASS")]
    said = glance(config(PLAN), log, None, NOW)
    assert said["text"] == "v2.4.0 at 50% (step 2 of 3), every check passing, next step in 12 s"
    assert (said["state"], said["tone"]) == ("in_progress", "ok")


def test_the_last_step_says_promotion() -> None:
    log = [entry("hold", verdict="PASS", step=2, weight=100, step_started=NOW - 40)]
    said = glance(config(PLAN), log, None, NOW)
    assert said["text"].endswith("every check passing, promotion at the next check")


def test_a_failing_check_is_named_with_the_count_to_rollback() -> None:
    checks = [{"name": "error_rate", "status": "FAIL"}, {"name": "psi", "status": "PASS"}]
    log = [entry("hold", verdict="FAIL", failures=1, checks=checks)]
    said = glance(config(PLAN), log, None, NOW)
    assert (
        said["text"] == "v2.4.0 at 50% (step 2 of 3): error rate failing (1 of 2 before rollback)"
    )
    assert said["tone"] == "bad"


def test_waiting_for_samples_says_how_many() -> None:
    log = [entry("hold", verdict="WAITING_FOR_SAMPLES", samples={"candidate": 40, "stable": 41})]
    said = glance(config(PLAN), log, None, NOW)
    assert "waiting for samples (40 and 41 of the 300 a side a pass needs)" in said["text"]


def test_a_rollback_keeps_its_verdict_after_the_plan_is_gone() -> None:
    checks = [{"name": "error_rate", "status": "FAIL"}]
    log = [entry("start", weight=10, step=0), entry("rollback", weight=10, step=0, checks=checks)]
    said = glance(config(), log, None, NOW)
    assert said == {
        "state": "rolled_back",
        "tone": "bad",
        "text": "v2.4.0 rolled back at 10%: error rate",
    }


def test_a_bake_rollback_names_the_bake() -> None:
    checks = [{"name": "tier_agreement", "status": "FAIL"}]
    log = [entry("rollback", phase="shadow_bake", step=-1, weight=0, checks=checks)]
    assert glance(config(), log, None, NOW)["text"] == (
        "v2.4.0 rolled back in the shadow bake: tier agreement"
    )


def test_a_promotion_stays_until_the_next_rollout() -> None:
    log = [entry("advance"), entry("promote", step=2, weight=100)]
    said = glance(config(), log, None, NOW)
    assert (
        said["state"] == "promoted" and said["text"] == "v2.4.0 promoted: stable since 12:00:00 UTC"
    )
    # A new plan written but not started: said, with the last result.
    said = glance(config(PLAN), log, None, NOW)
    assert said["state"] == "plan_ready" and "last rollout: v2.4.0 promoted" in said["text"]


def test_only_the_latest_rollout_counts() -> None:
    old = [entry("rollback", plan="p0", checks=[{"name": "psi", "status": "FAIL"}])]
    new = [entry("hold", plan="p1", verdict="PASS")]
    assert glance(config(PLAN), old + new, None, NOW)["state"] == "in_progress"


def test_a_halt_says_what_to_type() -> None:
    log = [entry("halt", reason="tier_mix: undecided")]
    said = glance(config(PLAN), log, None, NOW)
    assert said["state"] == "halted" and "streamflow rollout resume --accept" in said["text"]


SHADOW = "shadow: {version: v2.4.0, percent: 10}\n"


def test_a_shadow_is_judged_against_the_default_bake() -> None:
    report = {"pairs": [pair(1200, 80.6, 0.117)]}
    said = glance(config(SHADOW), None, report, NOW)
    assert said == {
        "state": "shadowing",
        "tone": "bad",
        "text": "v2.4.0 shadowed at 10%: tier agreement 80.6% is below the 90% a bake requires",
    }


def test_a_shadow_is_judged_against_the_plans_bake() -> None:
    plan = (
        "rollout: {candidate: v2.4.0, steps: [100], shadow_bake: {percent: 10, duration: 1m,"
        " min_tier_agreement: 0.75, psi: 0.1}}\n"
    )
    report = {"pairs": [pair(1200, 80.6, 0.117)]}
    # The plan is not started yet: that is said first.
    assert glance(config(SHADOW + plan), None, report, NOW)["state"] == "plan_ready"
    said = glance(config(SHADOW), None, {"pairs": [pair(1200, 95.0, 0.3)]}, NOW)
    assert said["text"] == "v2.4.0 shadowed at 10%: PSI 0.300 is above the 0.2 a bake allows"


def test_a_young_shadow_waits_for_rows_and_a_good_one_passes() -> None:
    said = glance(config(SHADOW), None, {"pairs": [pair(120, 50.0, 0.9)]}, NOW)
    assert said["tone"] == "wait" and "120 of the 300 compared rows a bake needs" in said["text"]
    said = glance(config(SHADOW), None, {"pairs": [pair(1200, 96.5, 0.03)]}, NOW)
    assert said["tone"] == "ok"
    assert said["text"] == (
        "v2.4.0 shadowed at 10%: tier agreement 96.5% and PSI 0.030 within what a bake requires"
    )


def test_a_shadow_at_zero_is_not_judged() -> None:
    assert glance(config("shadow: {version: v2.4.0, percent: 0}\n"), None, None, NOW)["state"] == (
        "no_plan"
    )
