"""The loop with a fake source and clock over a real routing.yaml: steps, rollback, promotion,
pause on a hand edit, and a restart that resumes the same step."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from rollout.controller import PROMOTED, ROLLED_BACK, Controller
from rollout.counts import LATENCY_BOUNDS, Snapshot, VersionCounts
from rollout.log import OPERATOR, DecisionLog
from rollout.sources.base import NotYet, SourceError
from routing_config import load_config

ROUTING = """\
service: s
stable: v1
mode: canary
versions:
  v1: {replicas: [http://a:8000]}
  v2: {replicas: [http://b:8000]}
canary:
  weights: {v1: 100, v2: 0}   # the operator's comment
rollout:
  candidate: v2
  steps: [10, 50, 100]
  interval: 3s
  check_every: 1s
  min_requests: 50
  thresholds: {psi: null, tier_shift: null}
"""


class Traffic:
    """A source whose counters grow each second by the file's weights, at ``rate`` req/s."""

    def __init__(
        self, path: Path, rate: int = 200, candidate_error: float = 0.0, stable_error: float = 0.0
    ) -> None:
        self.path = path
        self.rate = rate
        self.candidate_error = candidate_error
        self.stable_error = stable_error
        # Per version: requests, errors, answers in the slow tail.
        self.totals: dict[str, list[float]] = {"v1": [0, 0, 0], "v2": [0, 0, 0]}
        self.down = False
        self.tail = 0.0  # share of answers, of either version, taking 40 ms (a loaded machine)
        self.agreement = 1.0  # share of shadow rows whose tier matches the client's
        self.compared = 0.0  # shadow rows compared
        self.weights_seen: list[dict[str, int]] = []

    def tick(self) -> None:
        config = load_config(self.path).config
        weights = config.weights()
        self.weights_seen.append(weights)
        if config.shadow is not None and config.shadow.version == "v2":
            self.compared += self.rate * config.shadow.percent / 100
        for version, weight in weights.items():
            n = self.rate * weight / 100
            self.totals[version][0] += n
            self.totals[version][2] += n * self.tail
            error = self.candidate_error if version == "v2" else self.stable_error
            self.totals[version][1] += n * error

    def read(self) -> Snapshot:
        if self.down:
            raise SourceError("gateway down")
        out = {}
        for version, (n, errors, slow) in self.totals.items():
            latency = tuple(
                0.0 if b < 0.004 else n - slow if b < 0.04 else n for b in LATENCY_BOUNDS
            ) + (n,)
            out[version] = VersionCounts(requests=n, errors=errors, latency=latency)
        agreed = self.compared * self.agreement
        bins = (self.compared / 10,) * 10
        out["v2"] = replace(
            out["v2"],
            # client low / shadow low, and client low / shadow high for the rest
            shadow_tiers=(agreed, 0, self.compared - agreed, 0, 0, 0, 0, 0, 0),
            shadow_bins=bins,
            shadow_client_bins=bins,
        )
        return Snapshot(out)

    def took_effect(self, revision: str) -> float:
        return 0.0  # every tick follows the file at once, and every reading is live

    def describe(self) -> str:
        return "fake"


class Clock:
    def __init__(self, traffic: Traffic) -> None:
        self.now = 1_000_000.0
        self.traffic = traffic

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.traffic.tick()


def setup(tmp_path: Path, **traffic: float) -> tuple[Path, DecisionLog, Traffic, Clock]:
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING)
    source = Traffic(path, **traffic)  # type: ignore[arg-type]
    return path, DecisionLog(tmp_path / "routing.rollout.jsonl"), source, Clock(source)


def controller(path: Path, log: DecisionLog, source: Traffic, clock: Clock) -> Controller:
    return Controller(path, log, source, clock=clock, sleep=clock.sleep, say=lambda _: None)


def test_a_good_candidate_steps_up_and_is_promoted(tmp_path: Path) -> None:
    path, log, source, clock = setup(tmp_path)
    assert controller(path, log, source, clock).run() == PROMOTED
    config = load_config(path).config
    assert config.stable == "v2" and config.weights() == {"v1": 0, "v2": 100}
    assert config.rollout is None
    assert "# the operator's comment" in path.read_text()
    entries = log.read()
    actions = [e["action"] for e in entries]
    assert actions[0] == "start" and actions[-1] == "promote"
    assert [e["weight"] for e in entries if e["action"] in ("start", "advance")] == [10, 50, 100]
    # Never advanced on a WAITING check, nor before the interval.
    for e in entries:
        if e["action"] == "advance":
            assert e["verdict"] == "PASS"
    waits = [e for e in entries if e.get("verdict") == "WAITING_FOR_SAMPLES"]
    assert waits and all(e["action"] == "hold" for e in waits)


def test_a_failing_candidate_is_rolled_back_after_the_failure_limit(tmp_path: Path) -> None:
    path, log, source, clock = setup(tmp_path, candidate_error=0.2)
    assert controller(path, log, source, clock).run() == ROLLED_BACK
    config = load_config(path).config
    assert config.stable == "v1" and config.weights() == {"v1": 100, "v2": 0}
    assert config.rollout is None
    entries = log.read()
    fails = [e for e in entries if e.get("verdict") == "FAIL"]
    assert [e["action"] for e in fails] == ["hold", "rollback"]
    assert "error_rate" in entries[-1]["reason"]
    assert entries[-1]["weight"] == 10  # stopped at the first step


def test_a_hand_edit_pauses_and_resume_takes_the_file(tmp_path: Path) -> None:
    path, log, source, clock = setup(tmp_path)
    ctl = controller(path, log, source, clock)
    state = ctl.begin()
    path.write_text(path.read_text().replace("v1: 90, v2: 10", "v1: 70, v2: 30"))
    assert ctl.check(state) is None
    assert state.paused is not None and "changed outside the controller" in state.paused
    assert log.read()[-1]["action"] == "pause"
    for _ in range(10):  # paused: nothing written however long it waits
        clock.sleep(1)
        assert ctl.check(state) is None
    assert "v1: 70, v2: 30" in path.read_text()
    log.append({"by": OPERATOR, "plan": ctl.plan.id, "action": "resume"})
    assert ctl.check(state) is None
    assert state.paused is None and state.step == 0  # 30 stands at the 10% step
    assert load_config(path).config.weights() == {"v1": 90, "v2": 10}


def test_killed_and_restarted_it_resumes_the_same_step(tmp_path: Path) -> None:
    path, log, source, clock = setup(tmp_path)
    first = controller(path, log, source, clock)
    state = first.begin()
    while state.step < 1:
        clock.sleep(1)
        assert first.check(state) is None
    clock.sleep(1)
    first.check(state)
    before = [e for e in log.read() if e["action"] != "hold"]
    # A new process: only the file and the log survive.
    again = controller(path, DecisionLog(log.path), source, clock)
    resumed = again.begin()
    assert resumed.step == 1 and resumed.step_started == state.step_started
    assert resumed.step_baseline == state.step_baseline
    assert load_config(path).config.weights() == {"v1": 50, "v2": 50}
    after = [e for e in log.read() if e["action"] != "hold"]
    assert [e["action"] for e in after[len(before) :]] == ["restart"]
    assert again.run() == PROMOTED
    advances = [e["weight"] for e in log.read() if e["action"] in ("start", "advance")]
    assert advances == [10, 50, 100]  # none repeated, none skipped


def test_unreadable_metrics_hold_and_say_so(tmp_path: Path) -> None:
    path, log, source, clock = setup(tmp_path)
    ctl = controller(path, log, source, clock)
    state = ctl.begin()
    source.down = True
    clock.sleep(5)
    assert ctl.check(state) is None
    assert log.read()[-1]["reason"].startswith("metrics unavailable: gateway down")
    assert load_config(path).config.weights() == {"v1": 90, "v2": 10}


def test_operator_abort_stops_a_running_controller(tmp_path: Path) -> None:
    path, log, source, clock = setup(tmp_path)
    ctl = controller(path, log, source, clock)
    state = ctl.begin()
    log.append({"by": OPERATOR, "plan": ctl.plan.id, "action": "abort"})
    assert ctl.check(state) == ROLLED_BACK


def test_no_plan_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING.split("rollout:")[0])
    from rollout.controller import RolloutError

    with pytest.raises(RolloutError, match="no rollout section"):
        Controller(path, DecisionLog(tmp_path / "log"), Traffic(path))


def test_both_sides_are_judged_on_the_step_s_window(tmp_path: Path) -> None:
    """The machine gets busier at the 50% step: a tail of 3% slow answers, for both versions
    alike. Judged on the same window the candidate is no slower; against stable's whole
    rollout (mostly answered before the load came) its p99 would look ten times worse."""
    path, log, source, clock = setup(tmp_path)
    ctl = controller(path, log, source, clock)
    state = ctl.begin()
    while state.step < 1:
        clock.sleep(1)
        assert ctl.check(state) is None
    source.tail = 0.03
    assert ctl.run() == PROMOTED
    entries = log.read()
    at_half = [e for e in entries if e["weight"] == 50 and e["action"] == "hold"]
    assert at_half and all(e["verdict"] in ("PASS", "WAITING_FOR_SAMPLES") for e in at_half)
    for e in at_half:
        assert e["stable_window"] == "the same window, step 2 of 3 (50%)"
        # Stable's samples are its own in the step (100 a second at 50%), not the rollout's.
        seconds = round(datetime.fromisoformat(e["time"]).timestamp() - e["step_started"])
        assert e["samples"]["stable"] == 100 * seconds


def test_at_100_percent_stable_s_reference_is_the_previous_step(tmp_path: Path) -> None:
    path, log, source, clock = setup(tmp_path)
    first = controller(path, log, source, clock)
    state = first.begin()
    while state.step < 2:
        clock.sleep(1)
        assert first.check(state) is None
    advance = log.read()[-1]
    assert advance["action"] == "advance" and advance["weight"] == 100
    reference = advance["baselines"]["reference"]
    assert reference["window"] == "step 2 of 3 (50%)"
    # Stable served half of 200 a second for the step's seconds at 50%.
    served = reference["counts"]["requests"]
    assert served > 0 and served % 100 == 0
    clock.sleep(1)
    assert first.check(state) is None
    hold = log.read()[-1]
    assert hold["stable_window"] == "step 2 of 3 (50%)" and hold["samples"]["stable"] == served
    # A restarted controller judges against the same reference.
    again = controller(path, DecisionLog(log.path), source, clock)
    resumed = again.begin()
    assert resumed.reference == state.reference and resumed.reference_window == "step 2 of 3 (50%)"
    assert again.run() == PROMOTED
    promote = log.read()[-1]
    assert promote["action"] == "promote" and promote["samples"]["stable"] == served


def test_a_gateway_restarted_mid_step_restarts_the_window_not_the_rollout(
    tmp_path: Path,
) -> None:
    path, log, source, clock = setup(tmp_path)
    source.totals = {"v1": [1000, 0, 0], "v2": [150, 0, 0]}  # served before the rollout
    ctl = controller(path, log, source, clock)
    state = ctl.begin()
    while state.step < 1:
        clock.sleep(1)
        assert ctl.check(state) is None
    source.totals = {v: [0.0, 0.0, 0.0] for v in source.totals}  # the gateway restarted
    assert ctl.run() == PROMOTED
    entries = log.read()
    rebase = next(
        e for e in entries if "counters of v1, v2 restarted: counted from 0" in e["reason"]
    )
    assert rebase["step"] == 1 and "baselines" in rebase
    step1 = [e for e in entries if e["step"] == 1 and e["action"] == "hold"]
    after = step1[step1.index(rebase) :]
    seen = [e["samples"]["candidate"] for e in after]
    # Counted from 0 after the restart, and still growing once the new counters pass the
    # old baseline (a stale baseline would have cut them back to what lies above it).
    assert seen == sorted(seen) and seen[-1] >= 200
    assert all(v >= 0 for e in entries for v in e.get("samples", {}).values())


BAKE = "  shadow_bake: {percent: 50, duration: 3s, min_comparisons: 200}\n"


def test_a_shadow_bake_comes_first_and_serves_no_customer(tmp_path: Path) -> None:
    path, log, source, clock = setup(tmp_path)
    path.write_text(ROUTING + BAKE)
    ctl = controller(path, log, source, clock)
    state = ctl.begin()
    config = load_config(path).config
    assert state.step == -1 and config.weights() == {"v1": 100, "v2": 0}
    assert config.shadow is not None and (config.shadow.version, config.shadow.percent) == (
        "v2",
        50,
    )
    assert ctl.run() == PROMOTED
    entries = log.read()
    bake = [e for e in entries if e["phase"] == "shadow_bake"]
    assert bake[0]["action"] == "start" and "shadow bake at 50%" in bake[0]["reason"]
    # Below min_comparisons it waits (100 compared a second), then passes on its checks.
    holds = [e for e in bake if e["action"] == "hold"]
    assert holds[0]["verdict"] == "WAITING_FOR_SAMPLES"
    assert holds[-1]["verdict"] == "PASS"
    names = {c["name"] for e in bake for c in e.get("checks", [])}
    assert names == {"tier_agreement", "shadow_psi"}
    first_step = next(e for e in entries if e["action"] == "advance")
    assert first_step["step"] == 0 and first_step["weight"] == 10
    assert first_step["verdict"] == "PASS" and "shadow off" in first_step["reason"]
    # No customer reached the candidate before the bake passed.
    baking = source.weights_seen[: len(holds)]
    assert all(w["v2"] == 0 for w in baking)
    assert [e["weight"] for e in entries if e["action"] in ("start", "advance")] == [0, 10, 50, 100]
    config = load_config(path).config
    assert config.shadow is not None and config.shadow.percent == 0


def test_a_candidate_that_disagrees_in_the_bake_is_rolled_back_unserved(tmp_path: Path) -> None:
    path, log, source, clock = setup(tmp_path)
    path.write_text(ROUTING + BAKE)
    source.agreement = 0.6
    assert controller(path, log, source, clock).run() == ROLLED_BACK
    entries = log.read()
    assert entries[-1]["action"] == "rollback" and entries[-1]["phase"] == "shadow_bake"
    assert "tier_agreement" in entries[-1]["reason"]
    assert all(w["v2"] == 0 for w in source.weights_seen)
    config = load_config(path).config
    assert config.shadow is not None and config.shadow.percent == 0 and config.rollout is None


def test_killed_in_the_bake_it_resumes_the_bake(tmp_path: Path) -> None:
    path, log, source, clock = setup(tmp_path)
    path.write_text(ROUTING + BAKE)
    first = controller(path, log, source, clock)
    state = first.begin()
    clock.sleep(1)
    first.check(state)
    again = controller(path, DecisionLog(log.path), source, clock).begin()
    assert again.step == -1 and again.step_baseline == state.step_baseline


BLUE_GREEN = """\
service: s
stable: v1
mode: blue_green
versions:
  v1: {replicas: [http://a:8000]}
  v2: {replicas: [http://b:8000]}
blue_green: {blue: v1, green: v2, live: blue}   # the operator's comment
rollout:
  candidate: v2
  strategy: blue_green
  interval: 3s
  check_every: 1s
  min_requests: 50
  thresholds: {psi: null, tier_shift: null}
"""


def test_blue_green_takes_a_reference_flips_bakes_and_promotes(tmp_path: Path) -> None:
    path, log, source, clock = setup(tmp_path)
    path.write_text(BLUE_GREEN)
    assert controller(path, log, source, clock).run() == PROMOTED
    entries = log.read()
    assert [e["phase"] for e in entries if e["action"] in ("start", "advance")] == [
        "reference",
        "step",
    ]
    reference = next(e for e in entries if e["action"] == "advance")
    assert reference["weight"] == 100 and reference["baselines"]["reference"]["window"] == (
        "reference"
    )
    baked = [e for e in entries if e["phase"] == "step" and e["action"] in ("hold", "promote")]
    assert baked and all(e["stable_window"] == "reference" for e in baked)
    assert entries[-1]["action"] == "promote"
    config = load_config(path).config
    assert config.stable == "v2" and config.blue_green is not None
    assert config.blue_green.live == "green" and config.rollout is None
    assert "# the operator's comment" in path.read_text()
    # Stable alone until the flip, the candidate alone after it.
    assert source.weights_seen[0] == {"v1": 100, "v2": 0}
    assert source.weights_seen[-1] == {"v1": 0, "v2": 100}


def test_blue_green_flips_back_on_a_breach_in_the_baking_period(tmp_path: Path) -> None:
    path, log, source, clock = setup(tmp_path, candidate_error=0.2)
    path.write_text(BLUE_GREEN)
    assert controller(path, log, source, clock).run() == ROLLED_BACK
    last = log.read()[-1]
    assert last["action"] == "rollback" and "error_rate" in last["reason"]
    assert last["weight"] == 100 and last["stable_window"] == "reference"
    config = load_config(path).config
    assert config.blue_green is not None and config.blue_green.live == "blue"
    assert config.stable == "v1" and config.rollout is None


def test_blue_green_with_a_shadow_bake_bakes_in_the_shadow_first(tmp_path: Path) -> None:
    path, log, source, clock = setup(tmp_path)
    path.write_text(BLUE_GREEN + BAKE)
    assert controller(path, log, source, clock).run() == PROMOTED
    entries = log.read()
    phases = [e["phase"] for e in entries if e["action"] in ("start", "advance")]
    assert phases == ["shadow_bake", "step"]
    flip = next(e for e in entries if e["action"] == "advance")
    assert flip["baselines"]["reference"]["window"] == "shadow bake"
    config = load_config(path).config
    assert config.shadow is not None and config.shadow.percent == 0
    assert config.blue_green is not None and config.blue_green.live == "green"


def test_a_bake_before_a_flip_lasts_until_stable_has_a_reference(tmp_path: Path) -> None:
    path, log, source, clock = setup(tmp_path)
    bake = "  shadow_bake: {percent: 100, duration: 3s, min_comparisons: 20}\n"
    path.write_text(BLUE_GREEN.replace("min_requests: 50", "min_requests: 1000") + bake)
    ctl = controller(path, log, source, clock)
    state = ctl.begin()
    outcome = None
    for _ in range(60):  # bounded: a reference too small to judge against would wait forever
        clock.sleep(1)
        outcome = ctl.check(state)
        if outcome is not None:
            break
    assert outcome == PROMOTED
    entries = log.read()
    waits = [
        e
        for e in entries
        if e["phase"] == "shadow_bake" and e.get("verdict") == "WAITING_FOR_SAMPLES"
    ]
    assert any("for a reference before the flip" in e["reason"] for e in waits)
    flip = next(e for e in entries if e["action"] == "advance")
    assert flip["baselines"]["reference"]["counts"]["requests"] >= 1000


class Scraped(Traffic):
    """The traffic as Prometheus sees it: scraped every ``every`` seconds, so a reading is up to
    that old, and says when it was taken and at which routing revision the gateway was."""

    def __init__(self, path: Path, every: int = 3, **traffic: float) -> None:
        super().__init__(path, **traffic)  # type: ignore[arg-type]
        self.every = every
        self.ticks = 0
        self.scrape = (Traffic.read(self), load_config(path).revision, 0.0)

    def tick(self) -> None:
        super().tick()  # the traffic of the second just gone, routed by the file as it was
        self.ticks += 1
        if self.ticks % self.every == 0:
            self.scrape = (Traffic.read(self), load_config(self.path).revision, float(self.ticks))

    def read(self) -> Snapshot:
        if self.down:
            raise SourceError("prometheus down")
        counts, _, at = self.scrape
        return Snapshot(counts.versions, scraped={"gw": at})

    def took_effect(self, revision: str) -> float:
        _, seen, at = self.scrape
        if seen != revision:
            raise NotYet(f"gw scraped at revision {seen}")
        return at


def scraped_setup(tmp_path: Path, **traffic: float) -> tuple[Path, DecisionLog, Scraped, Clock]:
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING)
    source = Scraped(path, **traffic)
    return path, DecisionLog(tmp_path / "routing.rollout.jsonl"), source, Clock(source)


def test_a_step_s_window_holds_only_traffic_routed_after_its_write(tmp_path: Path) -> None:
    """Readings up to 3 s old: a baseline read at the write would leave the previous step's
    last seconds (100/0, then 90/10) in the new step's window."""
    path, log, source, clock = scraped_setup(tmp_path)
    clock.sleep(1)
    clock.sleep(1)  # stable alone for 2 s, not scraped yet when the rollout starts
    assert controller(path, log, source, clock).run() == PROMOTED
    entries = log.read()
    judged = [e for e in entries if e.get("verdict") and e["samples"]["candidate"] > 0]
    # An advance's samples are of the step it passed.
    at_10 = [e["samples"] for e in judged if e.get("from_weight", e["weight"]) == 10]
    at_50 = [e["samples"] for e in judged if e.get("from_weight", e["weight"]) == 50]
    assert at_10 and all(s["stable"] == 9 * s["candidate"] for s in at_10)
    assert at_50 and all(s["stable"] == s["candidate"] for s in at_50)
    # Each window began once the scrape caught up, said in the next entry (the one judging it),
    # and no step's window began at its write.
    begun = [e for e in entries if "window begun" in e["reason"]]
    assert len(begun) == 3 and all("baselines" in e for e in begun)
    assert all(e["baselines"]["step"] is None for e in entries if e["action"] == "advance")
    assert all(e.get("verdict") for e in entries if e["action"] == "hold")


def test_no_verdict_twice_on_the_same_scrape(tmp_path: Path) -> None:
    """Checks every second, scrapes every 3 s: two of three checks read the same samples, and
    a failure on one scrape must not count as two checks in a row."""
    path, log, source, clock = scraped_setup(tmp_path, candidate_error=0.2)
    assert controller(path, log, source, clock).run() == ROLLED_BACK
    judged = [e for e in log.read() if e.get("verdict")]
    samples = [(e["step"], e["samples"]["candidate"], e["samples"]["stable"]) for e in judged]
    assert len(samples) == len(set(samples))
    fails = [e for e in judged if e["verdict"] == "FAIL"]
    assert [e["action"] for e in fails] == ["hold", "rollback"]
    assert fails[1]["samples"]["candidate"] > fails[0]["samples"]["candidate"]


def test_a_source_that_never_catches_up_holds_and_says_so(tmp_path: Path) -> None:
    path, log, source, clock = scraped_setup(tmp_path)
    source.every = 10_000  # no scrape after the write, ever
    ctl = controller(path, log, source, clock)
    state = ctl.begin()
    for _ in range(130):
        clock.sleep(1)
        assert ctl.check(state) is None
    assert state.step_baseline is None
    entries = log.read()
    assert [e["action"] for e in entries] == ["start", "hold", "hold"]
    assert entries[0]["baselines"]["step"] is None
    for e in entries[1:]:
        assert "verdict" not in e
        assert f"waits for samples from after revision {state.revision} took effect" in e["reason"]
        assert "gw scraped at revision" in e["reason"]
    # A controller restarted meanwhile waits for the window too, rather than invent one.
    again = controller(path, DecisionLog(log.path), source, clock).begin()
    assert again.step == 0 and again.step_baseline is None
    source.every = 1
    clock.sleep(1)
    ctl.check(state)
    assert state.step_baseline is not None


def test_an_undecided_step_halts_at_its_horizon_and_the_operator_decides(tmp_path: Path) -> None:
    # Both at 1.2%, over the 1% ceiling but not provably: the step cannot pass, nor fail.
    path, log, source, clock = setup(tmp_path, candidate_error=0.012, stable_error=0.012)
    ctl = controller(path, log, source, clock)
    state = ctl.begin()
    for _ in range(65):  # the default horizon: twenty intervals of 3 s
        clock.sleep(1)
        assert ctl.check(state) is None
    entries = log.read()
    (halt,) = [e for e in entries if e["action"] == "halt"]
    assert halt["verdict"] == "HALTED" and halt["weight"] == 10
    assert halt["time"] >= entries[0]["time"]
    assert "horizon" in halt["reason"] and "error_rate" in halt["reason"]
    assert "resume --accept" in halt["reason"] and "abort" in halt["reason"]
    assert entries[-1] == halt  # nothing judged while halted
    assert load_config(path).config.weights() == {"v1": 90, "v2": 10}

    # A restarted controller is still halted, and the operator takes the step as passed.
    again = controller(path, log, source, clock)
    state = again.begin()
    assert state.halted and state.paused is not None
    log.append({"by": OPERATOR, "plan": again.plan.id, "action": "resume", "accept": True})
    clock.sleep(1)
    assert again.check(state) is None
    assert load_config(path).config.weights() == {"v1": 50, "v2": 50}
    advance = log.read()[-1]
    assert advance["action"] == "advance" and "accepted by the operator" in advance["reason"]


def test_a_step_that_cannot_pass_never_outlives_its_horizon(tmp_path: Path) -> None:
    path, log, source, clock = setup(tmp_path, rate=2)  # never the 50 requests a pass needs
    ctl = controller(path, log, source, clock)
    state = ctl.begin()
    for _ in range(65):
        clock.sleep(1)
        ctl.check(state)
    last = log.read()[-1]
    assert last["action"] in ("halt", "advance", "rollback"), last
