"""The rollout's quality gate with a fake GET /quality: it waits for outcomes in a named state,
passes a candidate as good as stable, rolls back a worse one, halts past its longest wait, keeps
one design per rollout, and survives a restart. And the report's JSON gives the gate exactly
what the comparison itself would."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from outcomes.quality.compare import compare_paired, compare_unpaired
from outcomes.quality.gate import decide
from outcomes.quality.report import QualityInput, ShadowPairs, VersionRows, build_report
from rollout.checks.quality import comparison_of, quality_gate
from rollout.controller import PROMOTED, ROLLED_BACK, WAITING_FOR_OUTCOMES, Controller
from rollout.log import OPERATOR, DecisionLog
from rollout.sources.base import SourceError
from routing_config import ConfigError, RolloutQuality, load_config
from tests.rollout.test_controller import BAKE, ROUTING, Clock, Traffic

QUALITY = "  quality: {min_outcomes: 500, max_auc_drop: 0.01, max_wait: 60s}\n"


class FakeQuality:
    """Outcomes arrive at ``rate`` a second on each side from the rollout's start; the AUC
    difference is ``difference`` with the variance DeLong gives ``per_outcome`` / n."""

    def __init__(
        self, clock: Clock, rate: float = 100, difference: float = 0.0, per_outcome: float = 0.004
    ) -> None:
        self.clock = clock
        self.rate = rate
        self.difference = difference
        self.per_outcome = per_outcome
        self.asked: list[dict[str, Any]] = []
        self.down = False

    def report(self, *, stable: str, candidate: str, since: float) -> dict[str, Any]:
        self.asked.append({"stable": stable, "candidate": candidate, "since": since})
        if self.down:
            raise SourceError("gateway down")
        n = int(self.rate * max(0.0, self.clock() - since))
        comparison: dict[str, Any] = {
            "candidate": candidate,
            "stable": stable,
            "candidate_outcomes": n,
            "stable_outcomes": n,
            "candidate_churned": n // 4,
            "stable_churned": n // 4,
            "auc_difference": None
            if n < 8
            else {
                "estimate": self.difference,
                "standard_error": math.sqrt(self.per_outcome / n),
                "interval": [0, 0],
            },
            "brier_difference": None,
        }
        return {"comparison": {"paired": comparison, "unpaired": dict(comparison)}}

    def describe(self) -> str:
        return "fake quality"


def setup(
    tmp_path: Path, routing: str, **quality: float
) -> tuple[Controller, Path, DecisionLog, Traffic, Clock, FakeQuality]:
    path = tmp_path / "routing.yaml"
    path.write_text(routing)
    source = Traffic(path)
    clock = Clock(source)
    fake = FakeQuality(clock, **quality)
    log = DecisionLog(tmp_path / "routing.rollout.jsonl")
    ctl = Controller(
        path, log, source, clock=clock, sleep=clock.sleep, say=lambda _: None, quality=fake
    )
    return ctl, path, log, source, clock, fake


def test_a_candidate_as_good_as_stable_waits_for_outcomes_then_passes(tmp_path: Path) -> None:
    ctl, path, log, source, clock, fake = setup(tmp_path, ROUTING + QUALITY, rate=20)
    assert ctl.run() == PROMOTED
    entries = log.read()
    waiting = [e for e in entries if e.get("state") == WAITING_FOR_OUTCOMES]
    assert waiting and all(e["action"] == "hold" and e["weight"] == 50 for e in waiting)
    assert "waiting for outcomes" in waiting[0]["reason"]
    assert waiting[0]["quality"]["decision"] == "WAIT"
    assert "needs 500 on both sides" in waiting[0]["reason"]
    to_100 = next(e for e in entries if e["action"] == "advance" and e["weight"] == 100)
    assert "quality gate PASS" in to_100["reason"] and "always-valid bounds" in to_100["reason"]
    assert to_100["quality"]["decision"] == "PASS"
    assert to_100["quality"]["design"] == "unpaired"
    assert to_100["quality"]["lower"] > -0.01
    # The gate was asked only at the step before 100%, about the whole rollout.
    start = entries[0]["step_started"]
    assert {a["since"] for a in fake.asked} == {start}
    assert {(a["stable"], a["candidate"]) for a in fake.asked} == {("v1", "v2")}
    # Nobody reached 100% before it passed.
    assert all(w["v2"] <= 50 for w in source.weights_seen[: len(source.weights_seen) - 4])


def test_a_worse_candidate_is_rolled_back_on_outcomes(tmp_path: Path) -> None:
    ctl, path, log, source, clock, fake = setup(tmp_path, ROUTING + QUALITY, difference=-0.05)
    assert ctl.run() == ROLLED_BACK
    last = log.read()[-1]
    assert last["action"] == "rollback" and "quality gate FAIL" in last["reason"]
    assert last["quality"]["decision"] == "FAIL" and last["quality"]["upper"] < -0.01
    assert "-0.0500" in last["reason"]
    assert load_config(path).config.weights() == {"v1": 100, "v2": 0}
    assert all(w["v2"] < 100 for w in source.weights_seen)


def test_undecided_past_the_longest_wait_halts_for_the_operator(tmp_path: Path) -> None:
    # Exactly at the margin: the bounds straddle -0.01 for ever.
    ctl, path, log, source, clock, fake = setup(tmp_path, ROUTING + QUALITY, difference=-0.01)
    state = ctl.begin()
    for _ in range(200):
        clock.sleep(1)
        assert ctl.check(state) is None
        if state.halted:
            break
    entries = log.read()
    halt = entries[-1]
    assert halt["action"] == "halt" and halt["state"] == WAITING_FOR_OUTCOMES
    assert "longest wait (60s)" in halt["reason"] and "resume --accept" in halt["reason"]
    assert halt["quality"]["decision"] == "INCONCLUSIVE"
    first_wait = next(e for e in entries if e.get("state") == WAITING_FOR_OUTCOMES)
    since = first_wait["quality_state"]["waiting_since"]
    assert halt["quality_state"]["waiting_since"] == since
    assert clock() - since >= 60
    assert load_config(path).config.weights() == {"v1": 50, "v2": 50}

    # Restarted, it is still halted; the operator accepts and it goes on to 100%.
    again = Controller(
        path, log, source, clock=clock, sleep=clock.sleep, say=lambda _: None, quality=fake
    )
    state = again.begin()
    assert state.halted and state.quality_waiting_since is not None
    log.append({"by": OPERATOR, "plan": again.plan.id, "action": "resume", "accept": True})
    clock.sleep(1)
    assert again.check(state) is None
    assert load_config(path).config.weights() == {"v1": 0, "v2": 100}
    assert state.quality_passed


def test_a_restart_keeps_the_longest_wait(tmp_path: Path) -> None:
    ctl, path, log, source, clock, fake = setup(tmp_path, ROUTING + QUALITY, rate=1)
    state = ctl.begin()
    while state.quality_waiting_since is None:
        clock.sleep(1)
        ctl.check(state)
    began = state.quality_waiting_since
    clock.sleep(5)
    again = Controller(
        path, log, source, clock=clock, sleep=clock.sleep, say=lambda _: None, quality=fake
    )
    resumed = again.begin()
    assert resumed.quality_waiting_since == began
    assert resumed.rollout_started == state.rollout_started
    assert not resumed.quality_passed


def test_with_a_shadow_bake_the_gate_is_paired_and_before_any_customer(tmp_path: Path) -> None:
    ctl, path, log, source, clock, fake = setup(tmp_path, ROUTING + BAKE + QUALITY, rate=20)
    assert ctl.run() == PROMOTED
    entries = log.read()
    waiting = [e for e in entries if e.get("state") == WAITING_FOR_OUTCOMES]
    assert waiting and all(e["phase"] == "shadow_bake" and e["weight"] == 0 for e in waiting)
    first = next(e for e in entries if e["action"] == "advance")
    assert first["weight"] == 10 and "quality gate PASS" in first["reason"]
    assert first["quality"]["design"] == "paired"
    # Asked in the bake only: one design, one gate a rollout.
    assert all(e["quality_state"]["design"] == "paired" for e in entries)
    n_waits = len(waiting)
    assert all(w["v2"] == 0 for w in source.weights_seen[:n_waits])


def test_no_quality_report_keeps_waiting_and_says_why(tmp_path: Path) -> None:
    ctl, path, log, source, clock, fake = setup(tmp_path, ROUTING + QUALITY)
    fake.down = True
    state = ctl.begin()
    for _ in range(20):
        clock.sleep(1)
        assert ctl.check(state) is None
    last = log.read()[-1]
    assert (
        last["state"] == WAITING_FOR_OUTCOMES
        and "no quality report (gateway down)" in (last["reason"])
    )


def test_a_plan_with_a_quality_gate_needs_a_quality_source(tmp_path: Path) -> None:
    from rollout.controller import RolloutError

    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING + QUALITY)
    source = Traffic(path)
    with pytest.raises(RolloutError, match="GET /quality"):
        Controller(path, DecisionLog(tmp_path / "log.jsonl"), source)


def test_the_plan_s_quality_section_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING + QUALITY)
    spec = load_config(path).config.rollout
    assert spec is not None and spec.quality is not None
    assert (spec.quality.min_outcomes, spec.quality.max_auc_drop) == (500, 0.01)
    assert (spec.quality.max_wait, spec.quality.alpha) == (60.0, 0.05)
    path.write_text(ROUTING + "  quality: {min_outcomes: 0}\n")
    with pytest.raises(ConfigError, match="min_outcomes"):
        load_config(path)
    path.write_text(ROUTING + "  quality: {max_wait: 10}\n")
    with pytest.raises(ConfigError, match="max_wait"):
        load_config(path)
    # The candidate straight to 100% serves no customer before: only a bake gives outcomes.
    path.write_text(ROUTING.replace("[10, 50, 100]", "[100]") + QUALITY)
    with pytest.raises(ConfigError, match="shadow_bake"):
        load_config(path)
    path.write_text(ROUTING.replace("[10, 50, 100]", "[100]") + BAKE + QUALITY)
    load_config(path)


@pytest.mark.parametrize("design", ["paired", "unpaired"])
def test_the_report_s_json_gives_the_gate_what_the_comparison_gives(design: str) -> None:
    rng = np.random.default_rng(11)
    truth = rng.random(3000)
    y = rng.random(3000) < truth
    a = np.clip(truth + rng.normal(0, 0.15, 3000), 0.001, 0.999)
    b = np.clip(truth + rng.normal(0, 0.25, 3000), 0.001, 0.999)
    weighted = np.zeros(3000, dtype=np.int8)
    data = QualityInput(
        stable="s",
        candidate="c",
        versions=(
            VersionRows("s", a[:2000], y[:2000], weighted[:2000]),
            VersionRows("c", b[2000:], y[2000:], weighted[2000:]),
        ),
        pairs=(ShadowPairs("c", "s", b[:2000], a[:2000], y[:2000]),),
    )
    direct = (
        compare_paired(b[:2000], a[:2000], y[:2000], candidate="c", stable="s")
        if design == "paired"
        else compare_unpaired(b[2000:], y[2000:], a[:2000], y[:2000], candidate="c", stable="s")
    )
    spec = RolloutQuality(min_outcomes=500, max_auc_drop=0.01)
    via_json = quality_gate(build_report(data), design, spec)
    expected = decide(direct, 500, 0.01)
    assert via_json.decision == expected.decision
    assert via_json.auc_difference == pytest.approx(expected.auc_difference, abs=1e-12)
    assert via_json.lower == pytest.approx(expected.lower, abs=1e-12)
    assert comparison_of({"comparison": {design: None}}, design) is None


def test_rollout_status_says_the_gate_s_numbers(tmp_path: Path) -> None:
    from cli.rollout import format_log

    ctl, path, log, source, clock, fake = setup(
        tmp_path, ROUTING + QUALITY, difference=-0.05, rate=20
    )
    assert ctl.run() == ROLLED_BACK
    text = "\n".join(format_log(log.read()))
    assert "(waiting for outcomes)" in text
    assert "quality gate (unpaired): FAIL:" in text and "needs 500 each" in text
    assert "AUC difference -0.0500" in text and "margin -0.01" in text
    assert "last: rollback: quality gate FAIL" in text
