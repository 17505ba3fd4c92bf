"""The rollout's quality gate with real processes: real model replicas of trained artifacts, a
gateway recording every prediction, clients whose real outcomes are posted as they "happen",
and the controller (``streamflow rollout start``) reading the gateway's GET /quality.

The world is the training generator's: each client is a fresh customer drawn by
``model_server.train.draw_customers``, whose outcome was drawn from their true churn
probability. Stable is the shipped v2.3.1. Two candidates, each judged paired on the shadow
bake's rows (every request shadowed, no customer served by the candidate before the gate):

- ``v2.4.0-noisy``, v2.3.1's recipe trained on 40% flipped labels (``make artifacts`` builds
  it; never in the shipped routing.yaml): the gate must hold it back and roll it back in the
  bake, before any customer saw it;
- the shipped v2.4.0, on its merits: on these customers its true AUC (computed offline from the
  generator's probabilities) is v2.3.1's within a few thousandths, far inside the margin, so the
  gate must pass it, with an interval that holds the true difference.

Each test prints the numbers (AUC of each version, the paired difference and its interval, the
outcomes used) for the README.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest

from model_server.features import CONTRACT_MAP, INTERNET_MAP, PAYMENT_MAP
from model_server.train import NOISY_VERSION, draw_customers
from routing_config import load_config
from tests.integration.procs import gateway, replica, wait_for
from tests.integration.test_rollout import PLAN, Stack
from tests.outcomes.quality.synthetic import population_auc

TOKEN = "gate-token"
STABLE = "v2.3.1"
MARGIN = 0.02
QUALITY_PLAN = {
    **PLAN,
    # The candidate must reach the quality gate: the bake's own checks let it by.
    "shadow_bake": {
        "percent": 100,
        "duration": "2s",
        "min_comparisons": 100,
        "min_tier_agreement": 0.05,
        "psi": None,
    },
    "thresholds": {**PLAN["thresholds"], "psi": None, "tier_shift": None},
    "quality": {"min_outcomes": 300, "max_auc_drop": MARGIN, "max_wait": "60s"},
}
TIMEOUT_S = 90.0
CUSTOMERS = 20_000  # more than any run sends (100 a second, 90 s at most)
CUSTOMER_SEED = 20261203  # not the training data's seed: customers the models never saw
_NAMES = {
    3: {v: k for k, v in CONTRACT_MAP.items()},
    4: {v: k for k, v in PAYMENT_MAP.items()},
    6: {v: k for k, v in INTERNET_MAP.items()},
}


def request_of(row: np.ndarray) -> dict[str, Any]:
    """One generated customer as the model API's request (the encoding train.py fits on)."""
    return {
        "tenure": int(row[0]),
        "monthly_charges": float(row[1]),
        "total_charges": float(row[2]),
        "contract_type": _NAMES[3][int(row[3])],
        "payment_method": _NAMES[4][int(row[4])],
        "num_support_tickets": int(row[5]),
        "internet_service": _NAMES[6][int(row[6])],
        "streaming_services": int(row[7]),
        "paperless_billing": bool(row[8]),
        "senior_citizen": bool(row[9]),
    }


class Customers:
    """Clients at ``rate`` a second, each the next generated customer; each outcome (drawn from
    the customer's true probability) posted in batches with the request id it answers."""

    def __init__(self, url: str, rate: float = 100) -> None:
        self.url = url
        self.rate = rate
        self.features, _, self.churned = draw_customers(CUSTOMERS, CUSTOMER_SEED)
        self.stop = threading.Event()
        self.pending: list[dict[str, Any]] = []
        self.served: dict[str, int] = {}
        self.sent = 0
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
            while not self.stop.wait(1 / self.rate) and self.sent < CUSTOMERS:
                i = self.sent
                self.sent += 1
                answer = client.post(f"{self.url}/predict", json=request_of(self.features[i]))
                if answer.status_code != 200:
                    self.failed += 1
                    continue
                version = answer.headers["X-Model-Version"]
                self.served[version] = self.served.get(version, 0) + 1
                self.pending.append(
                    {
                        "request_id": answer.headers["X-Request-Id"],
                        "churned": bool(self.churned[i]),
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


def routing_text(candidate: str) -> str:
    plan = {**QUALITY_PLAN, "candidate": candidate}
    return (
        f"service: streamflow-churn\nstable: {STABLE}\nmode: canary\nversions:\n"
        f"  {STABLE}:\n    replicas: [http://stable-a:8000]\n"
        f"  {candidate}:\n    replicas: [http://candidate-a:8000]\n"
        f"canary:\n  weights: {{{STABLE}: 100, {candidate}: 0}}\n"
        f"rollout: {json.dumps(plan)}\n"
    )


def true_auc_difference(artifacts: Path, candidate: str) -> tuple[float, float]:
    """(candidate's, stable's) AUC on the customers the clients send, computed offline from
    the generator's true probabilities (the expectation over their outcomes)."""
    features, probability, _ = draw_customers(CUSTOMERS, CUSTOMER_SEED)
    aucs = []
    for version in (candidate, STABLE):
        model = joblib.load(artifacts / version / "model.joblib")
        aucs.append(population_auc(model.predict_proba(features)[:, 1], probability))
    return aucs[0], aucs[1]


@pytest.fixture
def start(tmp_path: Path, log_dir: Path, artifacts_dir: Path) -> Iterator[Callable[[str], Stack]]:
    procs: list[Any] = []

    def start_(candidate: str) -> Stack:
        replicas = {
            "stable-a": replica("stable-a", STABLE, artifacts_dir),
            "candidate-a": replica("candidate-a", candidate, artifacts_dir),
        }
        for proc in replicas.values():
            procs.append(proc.start(log_dir))
        for proc in replicas.values():
            wait_for(f"http://{proc.address}/ready", timeout=60)
        path = tmp_path / "routing.yaml"
        path.write_text(routing_text(candidate))
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


def decided(entry: dict[str, Any]) -> bool:
    quality = entry.get("quality")
    return bool(quality) and quality["decision"] in ("PASS", "FAIL")


def run_to_the_gate(stack: Stack) -> tuple[dict[str, Any], dict[str, Any], Customers, int | None]:
    """Until the gate decides (PASS or FAIL): its entry, the gateway's report then, the clients,
    and the controller's exit code if it ended (a FAIL rolls back and exits)."""
    with Customers(stack.gateway_url) as customers:
        controller = stack.controller()
        try:
            stack.wait_for_entry(decided, TIMEOUT_S)
            gate = next(e for e in stack.entries() if decided(e))
            # The report on the predictions made until the gate decided (the bake's: every
            # request shadowed, so both versions' AUCs are on the same customers).
            until = datetime.fromisoformat(gate["time"]).timestamp()
            report = httpx.get(
                f"{stack.gateway_url}/quality", params={"until": str(until)}, timeout=30
            ).json()
            assert controller.popen is not None
            try:
                code: int | None = controller.popen.wait(10)
            except Exception:
                code = None
        finally:
            controller.stop()
    return gate, report, customers, code


def numbers(candidate: str, gate: dict[str, Any], report: dict[str, Any]) -> str:
    q = gate["quality"]
    auc = {v: report["versions"][v]["auc"]["value"] for v in (STABLE, candidate)}
    paired = report["comparison"]["paired"]
    low, high = paired["auc_difference"]["interval"]
    return (
        f"{candidate} against {STABLE}: gate {q['decision']} ({q['design']}) on "
        f"{q['n_candidate']} paired outcomes: AUC difference {q['auc_difference']:+.4f}, "
        f"always-valid interval [{q['lower']:+.4f}, {q['upper']:+.4f}], margin "
        f"-{q['max_auc_drop']}. Report until then: AUC {candidate} {auc[candidate]:.4f}, "
        f"{STABLE} {auc[STABLE]:.4f}; paired difference "
        f"{paired['auc_difference']['estimate']:+.4f}, 95% [{low:+.4f}, {high:+.4f}] on "
        f"{paired['candidate_outcomes']} outcomes"
    )


def test_a_model_trained_on_noisy_labels_is_held_back(
    start: Callable[[str], Stack], artifacts_dir: Path
) -> None:
    truth_candidate, truth_stable = true_auc_difference(artifacts_dir, NOISY_VERSION)
    assert truth_candidate - truth_stable < -MARGIN  # worse on its merits, by more than the margin
    stack = start(NOISY_VERSION)
    gate, report, customers, code = run_to_the_gate(stack)
    print(f"\n{numbers(NOISY_VERSION, gate, report)}; true AUCs {truth_candidate:.4f}, "
          f"{truth_stable:.4f}")  # fmt: skip
    q = gate["quality"]
    assert gate["action"] == "rollback" and "quality gate FAIL" in gate["reason"], gate
    assert gate["phase"] == "shadow_bake"
    assert q["design"] == "paired" and q["upper"] < -MARGIN
    assert q["lower"] <= truth_candidate - truth_stable
    assert code == 1
    assert any(e.get("state") == "waiting_for_outcomes" for e in stack.entries())
    assert customers.failed == 0
    assert set(customers.served) == {STABLE}  # no customer ever got the candidate
    assert load_config(stack.path).config.weights()[NOISY_VERSION] == 0


def test_the_shipped_v2_4_0_is_judged_on_its_merits(
    start: Callable[[str], Stack], artifacts_dir: Path
) -> None:
    truth_candidate, truth_stable = true_auc_difference(artifacts_dir, "v2.4.0")
    truth = truth_candidate - truth_stable
    assert abs(truth) < MARGIN / 4  # as good as v2.3.1 on these customers: it should pass
    stack = start("v2.4.0")
    gate, report, customers, _ = run_to_the_gate(stack)
    print(f"\n{numbers('v2.4.0', gate, report)}; true AUCs {truth_candidate:.4f}, "
          f"{truth_stable:.4f}")  # fmt: skip
    q = gate["quality"]
    assert q["decision"] == "PASS" and q["design"] == "paired", gate
    assert gate["action"] == "advance" and gate["weight"] == 20, gate
    assert q["n_candidate"] >= 300 and q["lower"] > -MARGIN
    assert q["lower"] <= truth <= q["upper"]
    assert customers.failed == 0
