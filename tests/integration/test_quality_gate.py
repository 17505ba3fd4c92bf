"""The rollout's quality gate with real processes: two stand-in replicas (rollout_replica.py),
a gateway recording every prediction, clients whose real outcomes are posted as they "happen",
and the controller (``streamflow rollout start``) reading the gateway's GET /quality.

The world: each customer's true churn probability is what the stable replica answers (its draw
is seeded by the request, so the same customer always gets the same number); each outcome is
drawn from it. An equal candidate (the same seeded draw) passes the gate; a worse one (0.8 of
its answer an unrelated draw, ``--noisy 0.8``: a stand-in for a model trained on noisy labels,
no trained artifact) is held back and rolled back in the shadow bake, before any customer saw
it. Both judged paired, on the bake's shadow rows.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from model_server.schemas import EXAMPLE_CUSTOMER
from routing_config import load_config
from tests.integration.procs import gateway, wait_for
from tests.integration.test_rollout import PLAN, Stack, rollout_replica, routing_text

TOKEN = "gate-token"
QUALITY_PLAN = {
    **PLAN,
    # The worse candidate must reach the quality gate: the bake's own checks let it by.
    "shadow_bake": {
        "percent": 100,
        "duration": "2s",
        "min_comparisons": 100,
        "min_tier_agreement": 0.05,
        "psi": None,
    },
    "thresholds": {**PLAN["thresholds"], "psi": None, "tier_shift": None},
    "quality": {"min_outcomes": 300, "max_auc_drop": 0.02, "max_wait": "60s"},
}
TIMEOUT_S = 90.0


class Customers:
    """Clients at ``rate`` a second, each a new customer; every answer's outcome drawn from the
    probability the client got (stable's: the truth) and posted in batches."""

    def __init__(self, url: str, rate: float = 100) -> None:
        self.url = url
        self.rate = rate
        self.random = random.Random(7)
        self.stop = threading.Event()
        self.pending: list[dict[str, Any]] = []
        self.served: dict[str, int] = {}
        self.posted = 0
        self.failed = 0
        self.threads = [
            threading.Thread(target=self._send, daemon=True),
            threading.Thread(target=self._post, daemon=True),
        ]

    def __enter__(self) -> Customers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def _send(self) -> None:
        with httpx.Client(timeout=20) as client:
            while not self.stop.wait(1 / self.rate):
                customer = {
                    **EXAMPLE_CUSTOMER,
                    "tenure": self.random.randint(1, 72),
                    "monthly_charges": round(self.random.uniform(20, 120), 2),
                    "total_charges": round(self.random.uniform(20, 8000), 2),
                }
                answer = client.post(f"{self.url}/predict", json=customer)
                if answer.status_code != 200:
                    self.failed += 1
                    continue
                version = answer.headers["X-Model-Version"]
                self.served[version] = self.served.get(version, 0) + 1
                p = answer.json()["churn_probability"]
                self.pending.append(
                    {
                        "request_id": answer.headers["X-Request-Id"],
                        "churned": self.random.random() < p,
                        "observed_at": time.time(),
                    }
                )

    def _post(self) -> None:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(timeout=20) as client:
            while not self.stop.wait(0.5):
                batch, self.pending = self.pending, []
                if batch:
                    answer = client.post(f"{self.url}/outcomes", json=batch, headers=auth)
                    assert answer.status_code == 200, answer.text
                    self.posted += len(batch)


@pytest.fixture
def start(tmp_path: Path, log_dir: Path) -> Iterator[Callable[..., Stack]]:
    procs: list[Any] = []

    def start_(candidate_args: tuple[str, ...]) -> Stack:
        replicas = {
            "stable-a": rollout_replica("stable-a", "v2.3.1", "--seeded"),
            "candidate-a": rollout_replica("candidate-a", "v2.4.0", *candidate_args),
        }
        for proc in replicas.values():
            procs.append(proc.start(log_dir))
        for proc in replicas.values():
            wait_for(f"{proc.url}/health", timeout=15)
        path = tmp_path / "routing.yaml"
        path.write_text(routing_text(QUALITY_PLAN))
        resolve = {f"{name}:8000": proc.address for name, proc in replicas.items()}
        gw = gateway(
            path,
            resolve,
            reload_interval_s=0.2,
            health_interval_s=0.5,
            prediction_log="true",
            data_dir=tmp_path / "data",
            outcomes_token=TOKEN,
        ).start(log_dir)
        procs.append(gw)
        wait_for(f"http://{gw.address}/ready", timeout=30)
        return Stack(
            path, tmp_path / "routing.rollout.jsonl", f"http://{gw.address}", log_dir, procs
        )

    yield start_
    for proc in reversed(procs):
        proc.stop()


def run(stack: Stack) -> tuple[int | None, list[dict[str, Any]], Customers]:
    with Customers(stack.gateway_url) as customers:
        controller = stack.controller()
        try:
            assert controller.popen is not None
            code = controller.popen.wait(TIMEOUT_S)
        finally:
            controller.stop()
    return code, stack.entries(), customers


def gate_of(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return next(e for e in reversed(entries) if e.get("quality"))


def test_a_worse_candidate_is_held_back_by_the_quality_gate(start: Callable[..., Stack]) -> None:
    stack = start(("--seeded", "--noisy", "0.8"))
    code, entries, customers = run(stack)
    assert code == 1, entries[-3:]
    last = entries[-1]
    assert last["action"] == "rollback" and "quality gate FAIL" in last["reason"], last
    assert last["phase"] == "shadow_bake"
    assert any(e.get("state") == "waiting_for_outcomes" for e in entries)
    q = last["quality"]
    assert q["design"] == "paired" and q["upper"] < -0.02
    print(f"\nworse candidate: {last['reason']}")
    assert customers.failed == 0
    assert set(customers.served) == {"v2.3.1"}  # no customer ever got the candidate
    assert load_config(stack.path).config.weights()["v2.4.0"] == 0


def test_an_equal_candidate_passes_the_quality_gate(start: Callable[..., Stack]) -> None:
    stack = start(("--seeded",))
    code, entries, customers = run(stack)
    assert code == 0, entries[-3:]
    gate = gate_of(entries)
    assert gate["action"] == "advance" and gate["weight"] == 20, gate
    assert gate["quality"]["decision"] == "PASS" and gate["quality"]["design"] == "paired"
    assert gate["quality"]["n_candidate"] >= 300
    print(f"\nequal candidate: {gate['reason']}")
    assert customers.failed == 0
    config = load_config(stack.path).config
    assert config.stable == "v2.4.0"
