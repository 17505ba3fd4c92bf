"""The loop: read routing.yaml and the log, read the metrics, ask the judge, act, record.

State lives in routing.yaml (the weights) and the decision log (step, when it began, the
counts at its start, failed checks in a row), never only in memory, so a controller killed at
any moment and started again resumes the same step with the same baselines. The controller
notices an edit it did not make (the file's revision is not the one it wrote) and pauses
rather than fight the operator; ``streamflow rollout resume`` takes the file as it then is.

Windows: both sides are judged on the same window, their counts since the current step began,
whenever stable serves traffic in it, so both saw the same machine, load and customers. Where
stable serves nothing (the candidate at 100%), stable's reference is its counts over the last
window in which it did serve (the previous step's), kept in the log's baselines so a restarted
controller judges against the same reference; every verdict names its reference window.

A window begins with samples taken after its routing took effect. Once the controller writes
the file, each gateway loads it within its reload interval, and a source's newest samples may
be older still (Prometheus's are up to a scrape interval old, each target scraped at its own
moment): a baseline read at once would leave the last moments of the previous routing in the
new window (a 50% step's traffic counted in the 100% step, stable's probabilities short of
the predictions they were compared with), and a request routed before the reload is counted
when it finishes, after it. So the baseline waits until the source says every gateway serves
the revision written with nothing an earlier one routed still in flight (``took_effect``;
gateway/settling.py) and has a reading with nothing taken before that; until then the step
has no window and no verdict. The wait is said at every check and logged as a hold every
WAIT_LOGGED_S. And a reading with nothing scraped since the previous check is the same samples
again: no verdict, and no failure counted twice, on it.

What to do with a verdict is rollout/rules.py's, pure (the simulator drives the same rules):
failures in a row, a pass after the interval, and the step's horizon, where a step that has not
passed is decided; one the judge cannot decide there halts: its weights stay, the log says why,
and the controller waits for ``streamflow rollout resume --accept`` (the step taken as passed)
or ``abort``, also across a restart. Each window is judged with its share of the rollout's
significance (rollout/checks/base.py, ``Budget``).

The quality gate (``rollout.quality``, once per rollout): where the plan would leave the shadow
bake (a plan with one) or the step before 100% (a plan without), a passing step does not
advance until the gateway's GET /quality says the candidate is not worse than stable on real
outcomes (rollout/checks/quality.py, ``outcomes.quality.gate``). Until then the controller is
*waiting for outcomes*: every check reads the report since the rollout began and logs the
gate's numbers; FAIL rolls back, PASS advances, and waiting (too few outcomes, or bounds that
straddle the margin) past ``max_wait`` halts for the operator, as a step's horizon does. The
wait's start is kept in the log, so a restarted controller keeps the same longest wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from outcomes.quality.gate import Decision, GateResult
from rollout import actions
from rollout.checks.base import Budget
from rollout.checks.quality import quality_gate
from rollout.counts import Snapshot, VersionCounts
from rollout.counts_json import (
    snapshot_from_json,
    snapshot_to_json,
    version_counts_from_json,
    version_counts_to_json,
)
from rollout.judge import judge, judge_reference, judge_shadow
from rollout.log import CONTROLLER, OPERATOR, DecisionLog
from rollout.plan import Plan, plan_of
from rollout.rules import ADVANCE, HALT, ROLLBACK, StepRules
from rollout.sources.base import NotYet, Source, SourceError
from rollout.sources.quality import QualitySource
from rollout.verdict import CODE_OF_STATUS, Status, Verdict
from routing_config import ConfigError, LoadedConfig, RoutingEditError
from routing_config.store import open_store

__all__ = ["PROMOTED", "ROLLED_BACK", "WAITING_FOR_OUTCOMES", "Controller", "RolloutError", "State"]

PROMOTED = 0
ROLLED_BACK = 1
TERMINAL = {"promote", "rollback", "abort"}
# Catching up takes a gateway's reload (2 s) and up to two scrapes (Prometheus's default
# interval is 15 s); waiting longer than this is worth a line in the log, and again as often.
WAIT_LOGGED_S = 60.0
# The named state of a passing step held by the quality gate (the log's "state" field).
WAITING_FOR_OUTCOMES = "waiting_for_outcomes"


class RolloutError(Exception):
    """The rollout cannot start or go on (no plan, unreadable file)."""


@dataclass(slots=True)
class State:
    step: int
    step_started: float  # wall-clock seconds: must survive a restart
    # None until the source has samples from after the step's routing took effect.
    step_baseline: Snapshot | None
    # Stable's counts over the last window it served in, and which window that was: the
    # reference where stable serves nothing in the current one.
    reference: VersionCounts | None
    reference_window: str | None
    revision: str  # of the routing.yaml the controller last wrote or adopted
    failures: int = 0
    paused: str | None = None
    halted: bool = False  # paused at the horizon: `resume --accept` takes the step as passed
    note: str | None = None  # said (with the baselines) in the next entry: a rebased window
    # The quality gate: when the rollout began (its report reads predictions since), whether
    # it has passed, and since when the controller waits for outcomes (all logged).
    rollout_started: float = 0.0
    quality_passed: bool = False
    quality_waiting_since: float | None = None
    quality: GateResult | None = None  # said in the next entry
    # Not logged: a restarted controller asks the source again.
    took_effect: float | None = None  # on the source's clock, once it says so
    last_read: Snapshot | None = None  # the last reading a check judged (or began with)
    waiting_since: float | None = None  # for a window, or for new samples
    wait_logged: float | None = None


class Controller:
    def __init__(
        self,
        routing_file: str | Path,
        log: DecisionLog,
        source: Source,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        say: Callable[[str], None] = print,
        quality: QualitySource | None = None,
        notify: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.path = str(routing_file)
        # A file or a ConfigMap (configmap:NAMESPACE/NAME): read and written the same way.
        try:
            self.store = open_store(self.path)
        except ConfigError as exc:
            raise RolloutError("; ".join(exc.messages)) from None
        self.log = log
        self.source = source
        self.clock = clock
        self.sleep = sleep
        self.say = say
        loaded = self._load()
        plan = plan_of(loaded)
        if plan is None:
            raise RolloutError(f"{self.path} has no rollout section: nothing to roll out")
        self.plan: Plan = plan
        if plan.spec.quality is not None and quality is None:
            raise RolloutError(
                "the plan has a quality gate (rollout.quality): the controller needs a "
                "gateway's GET /quality to read it"
            )
        self.quality = quality
        # Every entry written, and every operator command read, goes to rollout/notify.py's
        # queue (it decides what is worth telling; it never waits).
        self.notify = notify

    def run(self) -> int:
        """Until promoted (0) or rolled back or aborted (1)."""
        state = self.begin()
        while True:
            self.sleep(self.plan.spec.check_every)
            outcome = self.check(state)
            if outcome is not None:
                return outcome

    # --- start or resume ------------------------------------------------------------------

    def begin(self) -> State:
        history = [e for e in self.log.read() if e.get("plan") == self.plan.id]
        if history and history[-1].get("action") not in TERMINAL:
            return self._resume(history)
        self._read_until_available()  # no routing changed while the metrics are out of sight
        first = self.plan.first_step
        loaded = self._write_step(first)
        state = State(first, self.clock(), None, None, None, loaded.revision)
        state.rollout_started = state.step_started
        self._new_window(state)
        why = f"rollout of {self.plan.candidate} begins"
        if first < 0 and self.plan.spec.shadow_bake is not None:
            why += f" with a shadow bake at {self.plan.shadow_percent(first):g}%"
        elif first < 0:
            why += f" with a reference window of {self.plan.stable} alone"
        self._record(state, "start", None, why, True)
        return state

    def _resume(self, history: list[dict[str, Any]]) -> State:
        started = next(e for e in reversed(history) if "baselines" in e)
        reference = started["baselines"].get("reference")
        baseline = started["baselines"].get("step")
        state = State(
            step=int(started["step"]),
            step_started=float(started["step_started"]),
            step_baseline=snapshot_from_json(baseline) if baseline is not None else None,
            reference=version_counts_from_json(reference["counts"]) if reference else None,
            reference_window=str(reference["window"]) if reference else None,
            revision=str(next(e["revision"] for e in reversed(history) if "revision" in e)),
            failures=int(next((e["failures"] for e in reversed(history) if "failures" in e), 0)),
        )
        quality: dict[str, Any] = next(
            (e["quality_state"] for e in reversed(history) if "quality_state" in e), {}
        )
        state.rollout_started = float(quality.get("since", history[0].get("step_started", 0.0)))
        state.quality_passed = bool(quality.get("passed", False))
        waiting = quality.get("waiting_since")
        state.quality_waiting_since = float(waiting) if waiting is not None else None
        self._record(
            state,
            "restart",
            None,
            f"controller restarted: resuming {self._window_name(state.step)}",
        )
        commands = [e for e in history if e.get("action") in ("pause", "resume", "halt")]
        if commands and commands[-1]["action"] in ("pause", "halt"):
            state.paused = str(commands[-1].get("reason", "paused"))
            state.halted = commands[-1]["action"] == "halt"
        elif commands and commands[-1].get("by") == OPERATOR:
            self._adopt(state)  # resumed while no controller ran
        return state

    # --- one check ----------------------------------------------------------------------

    def check(self, state: State) -> int | None:
        accepted = False
        for entry in self.log.follow():
            if entry.get("by") != OPERATOR or entry.get("plan") != self.plan.id:
                continue
            if self.notify is not None:
                self.notify(entry)
            action = entry.get("action")
            if action == "abort":
                self.say("aborted by the operator (routing.yaml already rolled back)")
                return ROLLED_BACK
            if action == "pause":
                state.paused = str(entry.get("reason") or "paused by the operator")
                state.halted = False
            elif action == "resume" and entry.get("accept") and state.halted:
                outcome = self._accept(state)
                if outcome is not None:
                    return outcome
                accepted = True
            elif action == "resume":
                self._adopt(state)
        if state.paused is not None or accepted:
            return None  # accepted: the next step's window begins, judged from the next check

        try:
            loaded = self.store.load()
        except ConfigError as exc:
            self._pause(state, f"routing.yaml is invalid: {'; '.join(exc.messages)}")
            return None
        if loaded.revision != state.revision:
            self._pause(
                state,
                f"routing.yaml changed outside the controller (revision {loaded.revision}, "
                f"it wrote {state.revision}); `streamflow rollout resume` takes it as it is",
            )
            return None

        if state.step_baseline is None:
            written = state.step_started
            if self._begin_window(state):
                # Said, with the baseline, in the step's next entry.
                self._note(
                    state,
                    f"window begun {state.step_started - written:.1f}s after the write, with "
                    f"the first samples from after revision {state.revision} took effect",
                )
            return None
        try:
            now_counts = self.source.read()
        except SourceError as exc:
            self._record(state, "hold", None, f"metrics unavailable: {exc}")
            return None
        if state.last_read is not None and not now_counts.newer_than(state.last_read):
            self._wait(
                state, "nothing scraped since the last check: no verdict on the same samples"
            )
            return None
        state.last_read, state.waiting_since, state.wait_logged = now_counts, None, None
        restarted = now_counts.restarted_since(state.step_baseline)
        if restarted:
            # Kept in the log with this check's entry, so a restarted controller counts the
            # same window.
            state.step_baseline = state.step_baseline.rebased(now_counts)
            self._note(state, f"counters of {', '.join(restarted)} restarted: counted from 0")
        window = now_counts.minus(state.step_baseline)
        spec = self.plan.spec
        budget = Budget.of(spec, state.step)
        rules = StepRules.of(self.plan, state.step)
        waited = self.clock() - state.step_started
        if state.step < 0:
            reference_check = judge_reference(window.of(self.plan.stable), spec.min_requests)
            if spec.shadow_bake is None:
                return self._act(state, reference_check, now_counts, "stable alone")
            bake = window.of(self.plan.candidate)
            at_horizon = bool(rules.at_horizon(waited, sum(bake.shadow_tiers)))
            verdict = judge_shadow(bake, spec.shadow_bake, budget.alpha, horizon=at_horizon)
            if (
                verdict.status is Status.PASS
                and self.plan.weight(0) == 100
                and reference_check.status is not Status.PASS
            ):
                # The bake is then stable's reference for the flip: it needs enough of it.
                verdict = reference_check
            return self._act(
                state, verdict, now_counts, "the clients' answers, same requests", at_horizon
            )
        stable, reference = self._stable_reference(state, window)
        candidate = window.of(self.plan.candidate)
        at_horizon = bool(rules.at_horizon(waited, candidate.requests))
        verdict = judge(
            candidate,
            stable,
            spec.thresholds,
            spec.min_requests,
            budget=budget,
            same_window=self.plan.weight(state.step) < 100,
            horizon=at_horizon,
        )
        return self._act(state, verdict, now_counts, reference, at_horizon)

    def _stable_reference(self, state: State, window: Snapshot) -> tuple[VersionCounts, str]:
        """Stable's counts to judge the candidate against, and the window they are of."""
        if self.plan.weight(state.step) < 100:
            return window.of(self.plan.stable), f"the same window, {self._window_name(state.step)}"
        if state.reference is None:
            # Every plan serves stable in some window before a 100% step (a reference window
            # comes first when nothing else does); a log from before references were kept has
            # none, and the controller must not invent one: the verdict waits.
            return VersionCounts(), "none (stable served in no earlier window)"
        return state.reference, str(state.reference_window)

    def _window_name(self, step: int) -> str:
        if step < 0:
            return self.plan.before_first.replace("_", " ")
        # Counted from 1, as the status page, its verdict line and `rollout status` count them
        # (the log's "step" field stays the 0-based index into the plan's steps).
        return f"step {step + 1} of {len(self.plan.steps)} ({self.plan.weight(step)}%)"

    def _act(
        self,
        state: State,
        verdict: Verdict,
        counts: Snapshot,
        reference: str,
        at_horizon: bool = False,
    ) -> int | None:
        spec = self.plan.spec
        verdict = verdict.against(reference)
        rules = StepRules.of(self.plan, state.step)
        waited = self.clock() - state.step_started
        action, failures = rules.act(
            CODE_OF_STATUS[verdict.status], state.failures, waited, at_horizon
        )
        state.failures = int(failures)
        if action == ROLLBACK:
            state.revision = actions.roll_back(self.store, self.plan).revision
            if state.failures >= spec.failure_limit:
                why = f"failed {state.failures} checks in a row: {verdict.reason}"
            else:
                why = f"failed at the step's horizon: {verdict.reason}"
            self._record(state, "rollback", verdict, why)
            return ROLLED_BACK
        if action == HALT:
            state.paused, state.halted = self._halt_sentence(state, waited, verdict), True
            self._record(state, "halt", verdict, state.paused)
            return None
        if action == ADVANCE and self.plan.quality_gate_at(state.step) and not state.quality_passed:
            return self._quality_gate(state, verdict, counts)
        if action != ADVANCE:
            if verdict.status is Status.FAIL:
                why = f"failed check {state.failures} of {spec.failure_limit}: {verdict.reason}"
            else:
                why = verdict.reason
            if verdict.status is Status.PASS:
                why += f"; {waited:.0f}s of the step's {rules.interval:g}s"
            self._record(state, "hold", verdict, why)
            return None
        return self._advance(state, verdict, counts, f"for {waited:.0f}s")

    def _quality_gate(self, state: State, verdict: Verdict, counts: Snapshot) -> int | None:
        """The step passed: advance only on the quality gate's PASS (module docstring)."""
        spec = self.plan.spec.quality
        assert spec is not None and self.quality is not None
        now = self.clock()
        if state.quality_waiting_since is None:
            state.quality_waiting_since = now
        waited = now - state.quality_waiting_since
        try:
            report = self.quality.report(
                stable=self.plan.stable, candidate=self.plan.candidate, since=state.rollout_started
            )
        except SourceError as exc:
            gate = None
            said = f"waiting for outcomes: no quality report ({exc})"
        else:
            gate = quality_gate(report, self.plan.quality_design, spec)
            said = gate.reason
        state.quality = gate
        if gate is not None and gate.decision is Decision.PASS:
            state.quality_passed, state.quality_waiting_since = True, None
            return self._advance(state, verdict, counts, f"and the quality gate PASS: {said}")
        if gate is not None and gate.decision is Decision.FAIL:
            state.revision = actions.roll_back(self.store, self.plan).revision
            self._record(state, "rollback", verdict, f"quality gate FAIL: {said}")
            return ROLLED_BACK
        if waited >= spec.max_wait:
            state.paused, state.halted = (
                (
                    f"waited {waited:.0f}s for outcomes, past the quality gate's longest wait "
                    f"({spec.max_wait:g}s), undecided: {said}; the step's weights stay: "
                    "`streamflow rollout resume --accept` takes the gate as passed, "
                    "`streamflow rollout abort` rolls back"
                ),
                True,
            )
            self._record(state, "halt", verdict, state.paused, state_name=WAITING_FOR_OUTCOMES)
            return None
        self._record(
            state,
            "hold",
            verdict,
            f"waiting for outcomes ({waited:.0f}s of at most {spec.max_wait:g}s): {said}",
            state_name=WAITING_FOR_OUTCOMES,
        )
        return None

    def _halt_sentence(self, state: State, waited: float, verdict: Verdict) -> str:
        return (
            f"{self._window_name(state.step)} reached its horizon after {waited:.0f}s "
            f"undecided, {verdict.reason}; the step's weights stay: `streamflow rollout resume "
            f"--accept` takes it as passed, `streamflow rollout abort` rolls back"
        )

    def _accept(self, state: State) -> int | None:
        """The operator takes a halted step as passed: on as a PASS would go."""
        state.paused, state.halted = None, False
        if self.plan.quality_gate_at(state.step):
            state.quality_passed, state.quality_waiting_since = True, None
        counts = state.last_read if state.last_read is not None else self.source.read()
        return self._advance(state, None, counts, "(accepted by the operator at its horizon)")

    def _advance(
        self, state: State, verdict: Verdict | None, counts: Snapshot, how: str
    ) -> int | None:
        if state.step == self.plan.last_step:
            state.revision = actions.promote(self.store, self.plan).revision
            self._record(state, "promote", verdict, f"{self.plan.candidate} is now stable")
            return PROMOTED
        passed = self.plan.weight(state.step)
        if passed < 100 and state.step_baseline is not None:
            stable_served = counts.minus(state.step_baseline).of(self.plan.stable)
            state.reference = stable_served
            state.reference_window = self._window_name(state.step)
        what = f"{passed}%" if state.step >= 0 else f"the {self._window_name(state.step)}"
        state.step += 1
        state.revision = self._write_step(state.step).revision
        self._new_window(state)
        why = f"passed {what} {how}: candidate to {self.plan.weight(state.step)}%"
        if state.step == 0 and self.plan.spec.shadow_bake is not None:
            why += ", shadow off"
        self._record(state, "advance", verdict, why, True, passed=passed)
        return None

    def _adopt(self, state: State) -> None:
        """Resume on the file as it now is: the step its candidate weight stands at, begun
        afresh (new baseline, no failures carried)."""
        loaded = self._load()
        weight = loaded.config.weights().get(self.plan.candidate, 0)
        shadow = loaded.config.shadow
        baking = shadow is not None and shadow.version == self.plan.candidate and shadow.percent
        state.step = self.plan.step_for(weight)
        no_bake = self.plan.spec.shadow_bake is None
        if weight == 0 and self.plan.first_step < 0 and (baking or no_bake):
            state.step = -1  # no customer served yet: the bake or the reference window
        bake_on = state.step < 0 and self.plan.spec.shadow_bake is not None
        if weight != self.plan.weight(state.step) or bake_on != bool(baking):
            loaded = self._write_step(state.step)
        state.revision = loaded.revision
        state.failures = 0
        state.paused, state.halted = None, False
        self._new_window(state)
        self._record(state, "resume", None, f"resumed at {self._window_name(state.step)}", True)

    # --- windows ------------------------------------------------------------------------

    def _new_window(self, state: State) -> None:
        """The step's routing is written: its window begins now if the source already has
        samples from after it took effect (a live scrape of gateways that reloaded), else at a
        later check."""
        state.step_baseline, state.took_effect = None, None
        state.step_started = state.waiting_since = self.clock()
        state.wait_logged = None
        self._begin_window(state)

    def _begin_window(self, state: State) -> bool:
        try:
            if state.took_effect is None:
                state.took_effect = self.source.took_effect(state.revision)
            reading = self.source.read()
            behind = reading.taken_before(state.took_effect)
            if behind:
                raise NotYet(f"not scraped since: {', '.join(behind)}")
        except (NotYet, SourceError) as exc:
            self._wait(
                state,
                f"the window of {self._window_name(state.step)} waits for samples from after "
                f"revision {state.revision} took effect: {exc}",
            )
            return False
        state.step_baseline = state.last_read = reading
        state.step_started = self.clock()
        state.waiting_since = state.wait_logged = None
        return True

    def _note(self, state: State, note: str) -> None:
        state.note = note if state.note is None else f"{state.note}; {note}"

    def _wait(self, state: State, why: str) -> None:
        """Said at every check; logged as a hold once it has lasted WAIT_LOGGED_S, and again
        every WAIT_LOGGED_S."""
        now = self.clock()
        if state.waiting_since is None:
            state.waiting_since = now
        self.say(f"waiting: {why}")
        since = state.wait_logged if state.wait_logged is not None else state.waiting_since
        if now - since >= WAIT_LOGGED_S:
            state.wait_logged = now
            waited = now - state.waiting_since
            self._record(state, "hold", None, f"{why} (for {waited:.0f}s)")

    def _pause(self, state: State, why: str) -> None:
        state.paused = why
        self._record(state, "pause", None, why)

    # --- helpers ------------------------------------------------------------------------

    def _load(self) -> LoadedConfig:
        try:
            return self.store.load()
        except ConfigError as exc:
            raise RolloutError("; ".join(exc.messages)) from None

    def _write_step(self, step: int) -> LoadedConfig:
        try:
            return actions.set_step(self.store, self.plan, step)
        except RoutingEditError as exc:
            raise RolloutError(" ".join(exc.lines)) from None

    def _read_until_available(self) -> Snapshot:
        while True:
            try:
                return self.source.read()
            except SourceError as exc:
                self.say(f"waiting for metrics: {exc}")
                self.sleep(self.plan.spec.check_every)

    def _record(
        self,
        state: State,
        action: str,
        verdict: Verdict | None,
        reason: str,
        baselines: bool = False,
        passed: int | None = None,
        state_name: str | None = None,
    ) -> None:
        if state.note is not None:
            reason = f"{reason} ({state.note})"
            baselines, state.note = True, None
        entry: dict[str, Any] = {
            "by": CONTROLLER,
            "plan": self.plan.id,
            "candidate": self.plan.candidate,
            "stable": self.plan.stable,
            "step": state.step,
            "weight": self.plan.weight(state.step),
            "phase": self.plan.before_first if state.step < 0 else "step",
            "step_started": state.step_started,
            "revision": state.revision,
            "failures": state.failures,
            "action": action,
            "reason": reason,
        }
        if passed is not None:
            entry["from_weight"] = passed  # the verdict's samples are of that step
        if verdict is not None:
            entry.update(verdict.to_json())
        if state_name is not None:
            entry["state"] = state_name
        if self.plan.spec.quality is not None:
            entry["quality_state"] = {
                "since": state.rollout_started,
                "passed": state.quality_passed,
                "waiting_since": state.quality_waiting_since,
                "design": self.plan.quality_design,
            }
            if state.quality is not None:
                entry["quality"] = state.quality.to_json()
                state.quality = None
        if baselines:
            # A step whose window has not begun yet has no baseline: a restarted controller
            # waits for one as this one did.
            baseline = state.step_baseline
            entry["baselines"] = {
                "step": snapshot_to_json(baseline) if baseline is not None else None
            }
            if state.reference is not None:
                entry["baselines"]["reference"] = {
                    "window": state.reference_window,
                    "counts": version_counts_to_json(state.reference),
                }
        line = self.log.append(entry, at=self.clock())
        if self.notify is not None:
            self.notify(line)
        verdict_text = verdict.status.value if verdict else "-"
        self.say(f"{self._window_name(state.step)} {verdict_text} -> {action}: {reason}")
