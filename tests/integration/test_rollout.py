"""The rollout controller as a real process, over a real gateway and stand-in replicas that fail,
slow down or drift as told (tests/integration/rollout_replica.py), under paced client traffic.

Each scenario records, for the report in the README: candidate requests before the decision,
client failures and time to decision (printed; run with -s to see them).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from model_server.schemas import EXAMPLE_CUSTOMER
from rollout.actions import set_weights
from rollout.controller import Controller
from rollout.judge import judge
from rollout.log import DecisionLog
from rollout.sources.prometheus import PrometheusSource
from rollout.sources.scrape import ScrapeSource
from rollout.verdict import Status
from routing_config import RoutingConfig, load_config, parse_config
from routing_config.store.kube_api import KUBE_API_ENV
from tests.integration.fake_replicas import Proc
from tests.integration.procs import free_port, gateway, wait_for
from tests.integration.prometheus import PROMETHEUS, Prometheus
from tests.kube_standin import KubeStandIn

PLAN = {
    "candidate": "v2.4.0",
    "steps": [20, 50, 100],
    "interval": "2s",
    "check_every": "500ms",
    "min_requests": 100,
    "failure_limit": 2,
    # p99 over a hundred answers on a shared, busy two-core machine is mostly the machine's
    # noise (tens of ms, alike for both versions): a tighter ratio and a wider tolerance than
    # the defaults still tell 50 ms apart from it.
    "thresholds": {"p99_ratio": 1.25, "p99_tolerance_ms": 25},
}
RATE = 100  # client requests a second
DECISION_TIMEOUT_S = 60.0


def routing_text(plan: dict[str, Any] | None) -> str:
    text = (
        "service: streamflow-churn\nstable: v2.3.1\nmode: canary\nversions:\n"
        "  v2.3.1:\n    replicas: [http://stable-a:8000]\n"
        "  v2.4.0:\n    replicas: [http://candidate-a:8000]\n"
        "canary:\n  weights: {v2.3.1: 100, v2.4.0: 0}   # ramped by the rollout controller\n"
    )
    if plan is not None:
        text += f"rollout: {json.dumps(plan)}\n"
    return text


def rollout_replica(name: str, version: str, *args: str) -> Proc:
    port = free_port()
    argv = [sys.executable, "-m", "tests.integration.rollout_replica", str(port), version, *args]
    return Proc(name, argv, {}, port)


@dataclass
class Load:
    """Paced client traffic from a few threads until stopped (bounded in time)."""

    url: str
    rate: float
    threads: int = 4
    max_seconds: float = 90.0
    vary: bool = False  # a different customer each request (tenure 1..72), not one example
    sent: int = 0
    failed: int = 0
    by_version: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for _ in range(self.threads):
            worker = threading.Thread(target=self._run, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> Load:
        self._stop.set()
        for worker in self._workers:
            worker.join(30)
        return self

    def _run(self) -> None:
        gap = self.threads / self.rate
        deadline = time.monotonic() + self.max_seconds
        next_at = time.monotonic()
        with httpx.Client(timeout=20.0) as client:
            n = 0
            while not self._stop.is_set() and time.monotonic() < deadline:
                n += 1
                customer = {**EXAMPLE_CUSTOMER, "tenure": n % 72 + 1} if self.vary else None
                try:
                    response = client.post(f"{self.url}/predict", json=customer or EXAMPLE_CUSTOMER)
                    ok, what = response.status_code == 200, str(response.status_code)
                    version = response.headers.get("X-Model-Version", "?")
                except httpx.HTTPError as exc:
                    ok, what, version = False, type(exc).__name__, "?"
                with self._lock:
                    self.sent += 1
                    if ok:
                        self.by_version[version] += 1
                    else:
                        self.failed += 1
                        self.errors[what] += 1
                next_at += gap
                self._stop.wait(max(0.0, next_at - time.monotonic()))


@dataclass
class Stack:
    path: Path
    log: Path
    gateway_url: str
    workdir: Path
    procs: list[Any]
    # Routing in a ConfigMap behind the API stand-in instead of the file at ``path``.
    standin: KubeStandIn | None = None

    def controller(self, *extra: str) -> Proc:
        if self.standin is None:
            where, env = ["--file", str(self.path)], {}
        else:
            where = ["--file", self.standin.location, "--log", str(self.log)]
            env = {KUBE_API_ENV: self.standin.url}
        argv = [sys.executable, "-m", "gateway", "rollout", "start", *where]
        argv += ["--gateway", self.gateway_url, *extra]
        proc = Proc(f"controller-{len(self.procs)}", argv, env, 0).start(self.workdir)
        self.procs.append(proc)
        return proc

    def routing_text(self) -> str:
        return self.path.read_text() if self.standin is None else self.standin.text()

    def routing(self) -> RoutingConfig:
        return parse_config(self.routing_text()).config

    def entries(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def wait_for_entry(
        self, match: Callable[[dict[str, Any]], bool], timeout: float, count: int = 1
    ) -> None:
        """Until the log holds ``count`` entries that ``match``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(1 for e in self.entries() if match(e)) >= count:
                return
            time.sleep(0.1)
        raise AssertionError(f"not {count} such entries after {timeout}s: {self.entries()[-3:]}")


@pytest.fixture
def start_stack(tmp_path: Path, log_dir: Path) -> Iterator[Callable[..., Stack]]:
    procs: list[Any] = []
    standins: list[KubeStandIn] = []

    def start(
        candidate_args: tuple[str, ...] = (),
        plan: dict[str, Any] | None = None,
        stable_args: tuple[str, ...] = (),
        store: str = "file",
    ) -> Stack:
        replicas = {
            "stable-a": rollout_replica("stable-a", "v2.3.1", *stable_args),
            "candidate-a": rollout_replica("candidate-a", "v2.4.0", *candidate_args),
        }
        for proc in replicas.values():
            procs.append(proc.start(log_dir))
        for proc in replicas.values():
            wait_for(f"{proc.url}/health", timeout=15)
        path = tmp_path / "routing.yaml"
        text = routing_text(PLAN if plan is None else plan)
        standin = None
        if store == "configmap":
            standin = KubeStandIn("streamflow", "streamflow-routing", text).start()
            standins.append(standin)
        else:
            path.write_text(text)
        resolve = {f"{name}:8000": proc.address for name, proc in replicas.items()}
        where = Path(standin.location) if standin else path
        gw = gateway(where, resolve, reload_interval_s=0.2, health_interval_s=0.5)
        if standin is not None:
            gw.env[KUBE_API_ENV] = standin.url
        procs.append(gw.start(log_dir))
        wait_for(f"http://{gw.address}/ready", timeout=30)
        return Stack(
            path,
            tmp_path / "routing.rollout.jsonl",
            f"http://{gw.address}",
            log_dir,
            procs,
            standin,
        )

    yield start
    for proc in reversed(procs):
        proc.stop()
    for standin in standins:
        standin.stop()


@dataclass
class Outcome:
    code: int | None
    seconds: float
    load: Load
    entries: list[dict[str, Any]]

    @property
    def last(self) -> dict[str, Any]:
        return self.entries[-1]

    def report(self, scenario: str) -> None:
        candidate = sum(
            e["samples"]["candidate"] for e in self.entries if e["action"] in ("advance",)
        ) + self.last.get("samples", {}).get("candidate", 0)
        print(
            f"\n{scenario}: {self.last['action']} at {self.last['weight']}% after "
            f"{self.seconds:.1f}s; candidate requests judged {candidate:.0f} "
            f"(last step {self.last.get('samples', {}).get('candidate', 0):.0f}); "
            f"client failures {self.load.failed} of {self.load.sent}"
        )


def run_to_decision(stack: Stack, rate: float = RATE, *extra: str, vary: bool = False) -> Outcome:
    load = Load(stack.gateway_url, rate, vary=vary).start()
    started = time.monotonic()
    controller = stack.controller(*extra)
    try:
        assert controller.popen is not None
        code = controller.popen.wait(DECISION_TIMEOUT_S)
    finally:
        seconds = time.monotonic() - started
        load.stop()
        controller.stop()
    return Outcome(code, seconds, load, stack.entries())


# The ConfigMap runs: routing read and written through the Kubernetes API (the stand-in), the
# gateway following it through the watch; the same decisions as through the file.
STORES = ["file", "configmap"]


@pytest.mark.parametrize("store", STORES)
def test_a_good_candidate_is_promoted_with_no_client_failure(
    start_stack: Callable[..., Stack], store: str
) -> None:
    stack = start_stack(store=store)
    outcome = run_to_decision(stack)
    outcome.report(f"good candidate ({store})")
    assert outcome.code == 0, outcome.entries[-3:]
    assert outcome.load.failed == 0, outcome.load.errors
    config = stack.routing()
    assert config.stable == "v2.4.0" and config.weights() == {"v2.3.1": 0, "v2.4.0": 100}
    assert config.rollout is None
    assert "# ramped by the rollout controller" in stack.routing_text()
    steps = [e["weight"] for e in outcome.entries if e["action"] in ("start", "advance")]
    assert steps == [20, 50, 100]
    assert all(e["verdict"] == "PASS" for e in outcome.entries if e["action"] == "advance")
    assert outcome.load.by_version["v2.4.0"] > 0
    if stack.standin is not None:  # every write a patch against the version read, none refused
        writes = [e for e in outcome.entries if e["action"] in ("start", "advance", "promote")]
        assert stack.standin.counts["patch"] == len(writes)
        assert stack.standin.counts["conflict"] == 0


@pytest.mark.parametrize("store", STORES)
def test_a_candidate_failing_a_fifth_is_rolled_back_on_error_rate(
    start_stack: Callable[..., Stack], store: str
) -> None:
    stack = start_stack(("--fail", "0.2"), store=store)
    outcome = run_to_decision(stack)
    outcome.report(f"20% failing candidate ({store})")
    assert outcome.code == 1
    assert outcome.load.failed == 0, outcome.load.errors  # every failure saved by fallback
    last = outcome.last
    assert last["action"] == "rollback" and last["weight"] == 20
    assert "error_rate" in last["reason"]
    failing = next(c for c in last["checks"] if c["name"] == "error_rate")
    # Above the injected 20% when three failures in a row eject the replica for a while (its
    # requests then all fall back, and count against it).
    assert failing["status"] == "FAIL" and failing["value"] > 0.1
    assert last["samples"]["candidate"] <= 300
    config = stack.routing()
    assert config.weights() == {"v2.3.1": 100, "v2.4.0": 0} and config.rollout is None


def test_a_slower_candidate_is_rolled_back_on_latency(start_stack: Callable[..., Stack]) -> None:
    stack = start_stack(("--delay-ms", "50"))
    outcome = run_to_decision(stack)
    outcome.report("50 ms slower candidate")
    assert outcome.code == 1
    assert outcome.load.failed == 0, outcome.load.errors
    assert outcome.last["action"] == "rollback" and "latency_p99" in outcome.last["reason"]
    assert outcome.last["weight"] == 20


def test_drifting_predictions_are_rolled_back_on_psi_before_half(
    start_stack: Callable[..., Stack],
) -> None:
    stack = start_stack(("--shift",))
    outcome = run_to_decision(stack)
    outcome.report("drifting candidate")
    assert outcome.code == 1
    assert outcome.load.failed == 0
    assert outcome.last["action"] == "rollback" and "psi" in outcome.last["reason"]
    assert outcome.last["weight"] < 50
    psi = next(c for c in outcome.last["checks"] if c["name"] == "psi")
    assert psi["value"] > 0.2


def test_low_traffic_waits_for_samples_and_never_steps_up(
    start_stack: Callable[..., Stack],
) -> None:
    stack = start_stack()
    load = Load(stack.gateway_url, rate=5, threads=1).start()
    controller = stack.controller()
    # Never, shown over twelve checks (every 500 ms, PLAN): three step intervals of 2 s, each a
    # point where enough samples would have stepped up. Counted in the log, not slept for, so a
    # slow machine's late checks still all count.
    holds = 3 * 2_000 // 500
    try:
        stack.wait_for_entry(lambda e: e["action"] == "hold", 60, count=holds)
    finally:
        load.stop()
        controller.stop()
    entries = stack.entries()
    checks = [e for e in entries if e["action"] == "hold"]
    assert len(checks) >= holds
    assert {e["verdict"] for e in checks} == {"WAITING_FOR_SAMPLES"}
    assert {e["action"] for e in entries} == {"start", "hold"}
    print(f"\nlow traffic: {len(checks)} checks, all WAITING_FOR_SAMPLES at 20%, "
          f"{checks[-1]['samples']['candidate']:.0f} candidate requests")  # fmt: skip
    assert load_config(stack.path).config.weights()["v2.4.0"] == 20
    assert load.failed == 0


def test_killed_mid_rollout_it_resumes_at_the_same_step(
    start_stack: Callable[..., Stack],
) -> None:
    stack = start_stack()
    load = Load(stack.gateway_url, RATE).start()
    try:
        first = stack.controller()
        stack.wait_for_entry(lambda e: e["action"] == "advance", DECISION_TIMEOUT_S)
        assert first.popen is not None
        first.popen.send_signal(signal.SIGKILL)
        first.popen.wait(10)
        at_kill = load_config(stack.path).config.weights()["v2.4.0"]
        assert at_kill == 50
        again = stack.controller()
        assert again.popen is not None
        code = again.popen.wait(DECISION_TIMEOUT_S)
    finally:
        load.stop()
    entries = stack.entries()
    assert code == 0, entries[-3:]
    restart = next(e for e in entries if e["action"] == "restart")
    assert restart["step"] == 1 and restart["weight"] == 50
    assert [e["weight"] for e in entries if e["action"] in ("start", "advance")] == [20, 50, 100]
    assert load.failed == 0


def test_a_hand_edit_pauses_the_rollout(start_stack: Callable[..., Stack]) -> None:
    stack = start_stack()
    load = Load(stack.gateway_url, RATE).start()
    controller = stack.controller()
    try:
        stack.wait_for_entry(lambda e: e["action"] == "start", 30)
        from cli import main

        assert main(["set-weights", "v2.4.0=30", "--file", str(stack.path)]) == 0
        stack.wait_for_entry(lambda e: e["action"] == "pause", 10)
        # Nothing happens while paused, so there is nothing to wait for: 3 s is six checks
        # (every 500 ms) and one and a half step intervals (2 s) of a controller that ignored
        # the pause, each a point where it would have rewritten the weights or logged.
        time.sleep(3)
        assert controller.popen is not None and controller.popen.poll() is None  # still there
        assert load_config(stack.path).config.weights()["v2.4.0"] == 30
        pauses = [e for e in stack.entries() if e["action"] == "pause"]
        assert len(pauses) == 1 and "changed outside the controller" in pauses[0]["reason"]
        assert stack.entries()[-1]["action"] == "pause"  # nothing checked while paused
    finally:
        load.stop()
        controller.stop()


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (make tools)")
def test_the_prometheus_source_gives_the_same_verdicts(
    start_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    stack = start_stack(("--fail", "0.2"))
    routing = httpx.get(f"{stack.gateway_url}/routing").json()
    targets = [stack.gateway_url.removeprefix("http://")]
    targets += [r["address"].removeprefix("http://") for r in routing["replicas"]]
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    with Prometheus(targets, workdir, interval_ms=1000) as prometheus, httpx.Client() as client:
        scrape = ScrapeSource([stack.gateway_url], client)
        promql = PrometheusSource(prometheus.url, client)
        # The same traffic seen both ways, once Prometheus has scraped all of it.
        set_weights(str(stack.path), {"v2.3.1": 50, "v2.4.0": 50})
        wait_for_revision(stack, load_config(stack.path).revision)  # the gateway follows the file
        load = Load(stack.gateway_url, RATE).start()
        time.sleep(6)
        load.stop()
        direct = scrape.read()
        total = sum(c.requests for c in direct.versions.values())
        prometheus.wait_until(
            'sum(gateway_requests_total{reason!="fallback"}) + sum(gateway_fallbacks_total)',
            total,
        )
        prometheus.wait_until(
            'sum(model_churn_probability_count{shadow="false"})',
            sum(sum(c.probability) for c in direct.versions.values()),
        )
        asked = promql.read()
        assert asked == direct
        spec = load_config(stack.path).config.rollout
        assert spec is not None
        verdicts = [
            judge(s.of("v2.4.0"), s.of("v2.3.1"), spec.thresholds, spec.min_requests)
            for s in (direct, asked)
        ]
        assert verdicts[0] == verdicts[1] and verdicts[0].status is Status.FAIL

        # And a whole rollout judged on Prometheus alone.
        set_weights(str(stack.path), {"v2.3.1": 100, "v2.4.0": 0})
        outcome = run_to_decision(stack, RATE, "--prometheus", prometheus.url)
    outcome.report("20% failing candidate, Prometheus source")
    assert outcome.code == 1 and outcome.load.failed == 0
    assert outcome.last["action"] == "rollback" and "error_rate" in outcome.last["reason"]


def test_a_gateway_restarted_mid_step_is_counted_from_zero(
    start_stack: Callable[..., Stack],
) -> None:
    stack = start_stack()
    gw = next(p for p in stack.procs if p.name == "gateway")
    load = Load(stack.gateway_url, RATE).start()
    started = time.monotonic()
    try:
        controller = stack.controller()
        # Mid-step: once the 50% step's window has begun (its first verdict).
        stack.wait_for_entry(
            lambda e: e["step"] == 1 and e["action"] == "hold" and "verdict" in e,
            DECISION_TIMEOUT_S,
        )
        gw.stop()
        gw.start(stack.workdir)
        wait_for(f"{stack.gateway_url}/ready", timeout=30)
        assert controller.popen is not None
        code = controller.popen.wait(DECISION_TIMEOUT_S)
    finally:
        seconds = time.monotonic() - started
        load.stop()
    entries = stack.entries()
    Outcome(code, seconds, load, entries).report("gateway restarted at 50%")
    assert code == 0, entries[-3:]
    assert [e["weight"] for e in entries if e["action"] in ("start", "advance")] == [20, 50, 100]
    restarted = [e for e in entries if "restarted: counted from 0" in e["reason"]]
    assert restarted and restarted[0]["weight"] == 50
    # No window ever held fewer than nothing, nor more than was sent.
    for e in entries:
        for side in e.get("samples", {}).values():
            assert 0 <= side <= load.sent
    assert load_config(stack.path).config.stable == "v2.4.0"


BAKED = {**PLAN, "shadow_bake": {"percent": 100, "duration": "2s", "min_comparisons": 100}}


def test_a_shadow_bake_passes_before_any_customer_is_served(
    start_stack: Callable[..., Stack],
) -> None:
    stack = start_stack(("--seeded",), plan=BAKED, stable_args=("--seeded",))
    outcome = run_to_decision(stack, vary=True)
    outcome.report("shadow bake, good candidate")
    assert outcome.code == 0, outcome.entries[-3:]
    assert outcome.load.failed == 0, outcome.load.errors
    bake = [e for e in outcome.entries if e["phase"] == "shadow_bake" and e["action"] == "hold"]
    assert bake and bake[-1]["verdict"] == "PASS"
    agreement = next(c for c in bake[-1]["checks"] if c["name"] == "tier_agreement")
    assert agreement["value"] == 1.0 and bake[-1]["samples"]["candidate"] >= 100
    steps = [e["weight"] for e in outcome.entries if e["action"] in ("start", "advance")]
    assert steps == [0, 20, 50, 100]
    config = load_config(stack.path).config
    assert config.stable == "v2.4.0" and config.shadow is not None and config.shadow.percent == 0


def test_a_drifting_candidate_fails_the_shadow_bake_unseen_by_clients(
    start_stack: Callable[..., Stack],
) -> None:
    stack = start_stack(("--seeded", "--shift"), plan=BAKED, stable_args=("--seeded",))
    outcome = run_to_decision(stack, vary=True)
    outcome.report("shadow bake, drifting candidate")
    assert outcome.code == 1
    assert outcome.last["action"] == "rollback" and outcome.last["phase"] == "shadow_bake"
    assert "tier_agreement" in outcome.last["reason"] or "shadow_psi" in outcome.last["reason"]
    assert outcome.load.failed == 0 and outcome.load.by_version["v2.4.0"] == 0
    config = load_config(stack.path).config
    assert config.weights()["v2.4.0"] == 0 and config.rollout is None
    assert config.shadow is not None and config.shadow.percent == 0


BLUE_GREEN_PLAN = {k: v for k, v in PLAN.items() if k != "steps"} | {"strategy": "blue_green"}


def blue_green_text(plan: dict[str, Any]) -> str:
    return (
        "service: streamflow-churn\nstable: v2.3.1\nmode: blue_green\nversions:\n"
        "  v2.3.1:\n    replicas: [http://stable-a:8000]\n"
        "  v2.4.0:\n    replicas: [http://candidate-a:8000]\n"
        "blue_green: {blue: v2.3.1, green: v2.4.0, live: blue}   # flipped by the controller\n"
        f"rollout: {json.dumps(plan)}\n"
    )


def start_blue_green(start_stack: Callable[..., Stack], *candidate_args: str) -> Stack:
    stack = start_stack(candidate_args)
    stack.path.write_text(blue_green_text(BLUE_GREEN_PLAN))
    wait_for_revision(stack, load_config(stack.path).revision)
    return stack


def wait_for_revision(stack: Stack, revision: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{stack.gateway_url}/routing").json().get("revision") != revision:
        assert time.monotonic() < deadline, f"the gateway did not load revision {revision}"
        time.sleep(0.1)


def test_blue_green_flips_bakes_and_promotes(start_stack: Callable[..., Stack]) -> None:
    stack = start_blue_green(start_stack)
    outcome = run_to_decision(stack)
    outcome.report("blue/green, good candidate")
    assert outcome.code == 0, outcome.entries[-3:]
    assert outcome.load.failed == 0, outcome.load.errors
    phases = [e["phase"] for e in outcome.entries if e["action"] in ("start", "advance")]
    assert phases == ["reference", "step"]
    assert outcome.last["action"] == "promote" and outcome.last["stable_window"] == "reference"
    config = load_config(stack.path).config
    assert config.stable == "v2.4.0" and config.blue_green is not None
    assert config.blue_green.live == "green" and config.rollout is None
    assert "# flipped by the controller" in stack.path.read_text()


def test_blue_green_flips_back_when_the_candidate_is_slower(
    start_stack: Callable[..., Stack],
) -> None:
    stack = start_blue_green(start_stack, "--delay-ms", "50")
    outcome = run_to_decision(stack)
    outcome.report("blue/green, 50 ms slower candidate")
    assert outcome.code == 1
    assert outcome.load.failed == 0, outcome.load.errors
    assert outcome.last["action"] == "rollback" and "latency_p99" in outcome.last["reason"]
    config = load_config(stack.path).config
    assert config.blue_green is not None and config.blue_green.live == "blue"
    assert config.stable == "v2.3.1"


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (make tools)")
def test_the_shadow_bake_is_judged_through_prometheus_too(
    start_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    stack = start_stack(("--seeded", "--shift"), plan=BAKED, stable_args=("--seeded",))
    targets = [stack.gateway_url.removeprefix("http://")]
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    with Prometheus(targets, workdir, interval_ms=500) as prometheus:
        outcome = run_to_decision(stack, RATE, "--prometheus", prometheus.url, vary=True)
    outcome.report("shadow bake, drifting candidate, Prometheus source")
    assert outcome.code == 1, outcome.entries[-3:]
    assert outcome.last["action"] == "rollback" and outcome.last["phase"] == "shadow_bake"
    assert outcome.last["samples"]["candidate"] >= 100  # compared rows came through PromQL
    assert outcome.load.failed == 0 and outcome.load.by_version["v2.4.0"] == 0


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (make tools)")
def test_through_prometheus_a_window_begins_after_its_routing_took_effect(
    start_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    """The candidate serves everything, then the plan's reference window gives stable all of
    it: not one of the candidate's requests may be in that window, though Prometheus's newest
    samples are up to a scrape interval older than the write."""
    plan = {"candidate": "v2.4.0", "steps": [100], "interval": "30s", "check_every": "250ms"}
    stack = start_stack(plan=plan)
    stack.path.write_text(
        routing_text(plan).replace("{v2.3.1: 100, v2.4.0: 0}", "{v2.3.1: 0, v2.4.0: 100}")
    )
    routing = httpx.get(f"{stack.gateway_url}/routing").json()
    targets = [stack.gateway_url.removeprefix("http://")]
    targets += [r["address"].removeprefix("http://") for r in routing["replicas"]]
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    load = Load(stack.gateway_url, RATE).start()
    said: list[str] = []
    try:
        with Prometheus(targets, workdir, interval_ms=1000) as prometheus, httpx.Client() as client:
            source = PrometheusSource(prometheus.url, client)
            prometheus.wait_until("count(up == 1)", len(targets))
            prometheus.wait_until('sum(gateway_requests_total{version="v2.4.0"}) > bool 50', 1)
            ctl = Controller(stack.path, DecisionLog(stack.log), source, say=said.append)
            at_write = source.read()  # the baseline a window used to begin from
            state = ctl.begin()
            assert state.step == -1 and load_config(stack.path).config.weights()["v2.4.0"] == 0
            deadline = time.monotonic() + 15
            while state.step_baseline is None:
                assert time.monotonic() < deadline, said[-3:]
                time.sleep(0.25)
                assert ctl.check(state) is None
            waited = time.monotonic() - (deadline - 15)
            baseline = state.step_baseline
            # A window of 3 s or more (about 300 requests at RATE), all to stable now: wide
            # enough that a candidate request in it would show, as the stable count asserted
            # below (over 100) confirms.
            time.sleep(3)
            later = source.read()
            while not later.newer_than(baseline):
                time.sleep(0.25)
                later = source.read()
    finally:
        load.stop()
    window = later.minus(baseline)
    stale = later.minus(at_write).of("v2.4.0")
    print(
        f"\nreference window through Prometheus: began {waited:.1f}s after the write; "
        f"candidate requests in it {window.of('v2.4.0').requests:.0f} "
        f"(from a baseline read at the write: {stale.requests:.0f}, "
        f"{sum(stale.probability):.0f} predictions)"
    )
    assert window.of("v2.3.1").requests > 100 and sum(window.of("v2.3.1").probability) > 100
    assert window.of("v2.4.0").requests == 0
    assert sum(window.of("v2.4.0").probability) == 0  # nor a prediction on its replica
    assert any("waits for samples from after revision" in line for line in said)
    assert load.failed == 0
