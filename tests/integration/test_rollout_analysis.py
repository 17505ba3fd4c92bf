"""`streamflow rollout analysis` as a real process over a real gateway and stand-in replicas:
the verdict Argo Rollouts and Flagger would read is pass for a healthy candidate and fail for
one failing a fifth of its requests, while another controller (here the test) holds the
weights at 50/50."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

from rollout.actions import set_weights
from tests.integration.fake_replicas import Proc
from tests.integration.procs import free_port, wait_for

# start_stack: the controller tests' fixture (gateway, replicas), used here as it is there.
from tests.integration.test_rollout import Load, Stack, start_stack  # noqa: F401

VERDICT_TIMEOUT_S = 60.0


def analysis_process(stack: Stack) -> Proc:
    port = free_port()
    argv = [sys.executable, "-m", "gateway", "rollout", "analysis", "--file", str(stack.path),
            "--listen", f"127.0.0.1:{port}", "--gateway", stack.gateway_url]  # fmt: skip
    proc = Proc(f"analysis-{port}", argv, {}, port).start(stack.workdir)
    stack.procs.append(proc)
    wait_for(f"http://127.0.0.1:{port}/health", timeout=30)
    return proc


def decided(stack: Stack) -> tuple[dict[str, Any], float, int]:
    """Weights at 50/50 under paced load; the analysis asked as Argo would, every 0.5 s,
    until it is no longer pending. The verdict, the seconds it took, Flagger's answer then."""
    set_weights(str(stack.path), {"v2.3.1": 50, "v2.4.0": 50})
    wait_until_routing(stack, {"v2.3.1": 50, "v2.4.0": 50})
    proc = analysis_process(stack)
    url = f"http://127.0.0.1:{proc.port}"
    hook = {"name": "churn", "namespace": "models", "phase": "Progressing",
            "metadata": {"candidate": "v2.4.0", "stable": "v2.3.1"}}  # fmt: skip
    load = Load(stack.gateway_url, 100).start()
    started = time.monotonic()
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.post("/flagger/pre-rollout", json=hook).status_code == 200
            while True:
                verdict: dict[str, Any] = client.get("/verdict?candidate=v2.4.0").json()
                if verdict["status"] != "pending":
                    break
                assert time.monotonic() - started < VERDICT_TIMEOUT_S, verdict
                time.sleep(0.5)
            seconds = time.monotonic() - started
            flagger = client.post("/flagger/confirm-promotion", json=hook).status_code
    finally:
        load.stop()
    return verdict, seconds, flagger


def wait_until_routing(stack: Stack, weights: dict[str, int]) -> None:
    deadline = time.monotonic() + 10
    while httpx.get(f"{stack.gateway_url}/routing").json()["weights"] != weights:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_a_healthy_candidate_passes(start_stack: Callable[..., Stack]) -> None:  # noqa: F811
    stack = start_stack()
    verdict, seconds, flagger = decided(stack)
    print(f"\nhealthy candidate: {verdict['status']} after {seconds:.1f}s, "
          f"{verdict['samples']['candidate']:.0f} candidate requests")  # fmt: skip
    assert verdict["status"] == "pass", verdict
    assert verdict["samples"]["candidate"] >= 100  # the plan's min_requests
    assert flagger == 200
    # Nothing was edited: the judge only answers.
    assert "v2.3.1: 50, v2.4.0: 50" in stack.path.read_text()


def test_a_failing_candidate_fails(start_stack: Callable[..., Stack]) -> None:  # noqa: F811
    stack = start_stack(("--fail", "0.2"))
    verdict, seconds, flagger = decided(stack)
    print(f"\n20% failing candidate: {verdict['status']} after {seconds:.1f}s, "
          f"{verdict['samples']['candidate']:.0f} candidate requests")  # fmt: skip
    assert verdict["status"] == "fail", verdict
    error_rate = next(c for c in verdict["checks"] if c["name"] == "error_rate")
    assert error_rate["status"] == "FAIL" and error_rate["value"] > 0.1
    assert flagger == 412
