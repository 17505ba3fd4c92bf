"""A version served by a real MLServer is judged on prediction drift like ours: the gateway
counts the probabilities MLServer's answers served its clients (gateway_served_probability_rows),
and both controller sources, a scrape and a real Prometheus, read them for that version, where
our replica's own histogram (model_churn_probability) stays stable's.

Stable is v2.3.1 on our replica; the canary, v2.4.0, is that version's artifact exported by
``streamflow export mlserver`` and served by MLServer's scikit-learn runtime (``protocol: v2``).
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from model_server.mlserver_export import export_version
from model_server.schemas import EXAMPLE_CUSTOMER
from model_server.v2_rows import INPUTS
from rollout.counts import Snapshot
from rollout.judge import judge
from rollout.sources.prometheus import PrometheusSource
from rollout.sources.scrape import ScrapeSource
from routing_config import RolloutThresholds
from tests.integration.fake_replicas import Proc
from tests.integration.mlserver import MLServer
from tests.integration.procs import Process, gateway, replica, wait_for
from tests.integration.prometheus import PROMETHEUS, Prometheus
from vocabulary.buckets import PROBABILITY_BIN_LABELS

STABLE, CANARY = "v2.3.1", "v2.4.0"
STABLE_HOST, CANARY_HOST = "model-v2-3-1-a:8000", "mlserver-a:8080"


def routing(canary_weight: int, plan: dict[str, Any] | None = None) -> str:
    text = (
        f"service: streamflow-churn\nstable: {STABLE}\nmode: canary\nversions:\n"
        f"  {STABLE}:\n    replicas: [http://{STABLE_HOST}]\n"
        f"  {CANARY}:\n    replicas: [http://{CANARY_HOST}]\n"
        "    protocol: v2\n    score: {output: predict_proba, column: 1}\n"
        f"canary:\n  weights: {{{STABLE}: {100 - canary_weight}, {CANARY}: {canary_weight}}}\n"
    )
    return text if plan is None else text + f"rollout: {json.dumps(plan)}\n"


REQUESTS = 80  # per door; 4 customers each
ROWS = 4
BINS = len(PROBABILITY_BIN_LABELS)


def customers(count: int, seed: int) -> list[dict[str, Any]]:
    """Varied valid customers (the same every run), spread over the probability bins."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        tenure = int(rng.integers(0, 73))
        monthly = round(float(rng.uniform(18, 120)), 2)
        out.append(
            {
                **EXAMPLE_CUSTOMER,
                "tenure": tenure,
                "monthly_charges": monthly,
                "total_charges": round(monthly * tenure, 2),
                "contract_type": str(rng.choice(["month-to-month", "one-year", "two-year"])),
                "num_support_tickets": int(rng.integers(0, 8)),
                "paperless_billing": bool(rng.random() < 0.6),
            }
        )
    return out


def v2_json(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": name,
                "datatype": datatype,
                "shape": [len(rows)],
                "data": [r[name] for r in rows],
            }
            for name, datatype in INPUTS.items()
        ]
    }


def bin_of(probability: float) -> int:
    """The bin a probability falls in: upper bounds 0.1 ... 1.0, inclusive."""
    return min(max(math.ceil(probability * 10) - 1, 0), BINS - 1)


@pytest.fixture(scope="module")
def stable_replica(artifacts_dir: Path, log_dir: Path) -> Iterator[Process]:
    with replica("drift-model-v2-3-1-a", STABLE, artifacts_dir).running(log_dir) as proc:
        yield proc


@pytest.fixture(scope="module")
def canary_mlserver(
    artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory, log_dir: Path
) -> Iterator[MLServer]:
    exported = export_version(artifacts_dir, CANARY, tmp_path_factory.mktemp("drift-export"))
    server = MLServer(exported.directory, log_dir / "drift-mlserver", name="drift-mlserver")
    with server.running():
        yield server


@pytest.fixture
def start_gateway(
    stable_replica: Process, canary_mlserver: MLServer, tmp_path: Path, log_dir: Path
) -> Iterator[Callable[[str], tuple[Process, Path]]]:
    running: list[Process] = []

    def start(text: str) -> tuple[Process, Path]:
        path = tmp_path / "routing.yaml"
        path.write_text(text)
        resolve = {STABLE_HOST: stable_replica.address, CANARY_HOST: canary_mlserver.address}
        settings = {"health_interval_s": 0.5, "reload_interval_s": 0.2}
        proc = gateway(path, resolve, **settings).start(log_dir)
        running.append(proc)
        wait_for(f"http://{proc.address}/ready", timeout=30)
        # Until MLServer's replica passed its first V2 health check (readiness, version).
        wait_for(f"http://{proc.address}/v2/models/churn/versions/{CANARY}/ready", timeout=30)
        return proc, path

    yield start
    for proc in running:
        proc.stop()


def traffic(url: str) -> dict[str, list[int]]:
    """Bounded traffic through both doors (V2 JSON, /predict/batch): the bins of every
    probability each version's answers gave the client, counted here from the answers."""
    got = {STABLE: [0] * BINS, CANARY: [0] * BINS}
    with httpx.Client(base_url=url, timeout=10) as client:
        for n in range(REQUESTS):
            rows = customers(ROWS, seed=n)
            answer = client.post("/v2/models/churn/infer", json=v2_json(rows))
            assert answer.status_code == 200, answer.text
            body = answer.json()
            (probability,) = [o for o in body["outputs"] if o["name"] == "churn_probability"]
            for p in probability["data"]:
                got[body["model_version"]][bin_of(p)] += 1
            answer = client.post("/predict/batch", json={"customers": customers(ROWS, seed=n)})
            assert answer.status_code == 200, answer.text
            version = answer.headers["X-Model-Version"]
            for prediction in answer.json()["predictions"]:
                got[version][bin_of(prediction["churn_probability"])] += 1
    return got


def served_metric(url: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    text = httpx.get(f"{url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gateway_served_probability_rows_total":
                bins = out.setdefault(sample.labels["version"], [0.0] * BINS)
                bins[PROBABILITY_BIN_LABELS.index(sample.labels["bin"])] += sample.value
    return out


def check_reading(snapshot: Snapshot, got: dict[str, list[int]]) -> None:
    canary, stable = snapshot.of(CANARY), snapshot.of(STABLE)
    # MLServer exports no histogram: the canary's predictions are the gateway's count of them.
    assert canary.probability == (0.0,) * BINS
    assert list(canary.judged_probability) == got[CANARY]
    # Our replica's histogram is stable's; the gateway reads none of its answers for it.
    assert stable.served_probability == (0.0,) * BINS
    assert sum(stable.judged_probability) == sum(got[STABLE])


def test_an_mlserver_canary_is_judged_on_what_it_served(
    start_gateway: Callable[[str], tuple[Process, Path]], stable_replica: Process, tmp_path: Path
) -> None:
    gw, _ = start_gateway(routing(50))
    url = f"http://{gw.address}"
    got = traffic(url)
    assert sum(got[CANARY]) > 100 and sum(got[STABLE]) > 100  # both served (50/50)
    # The gateway's series: the canary's bins as its clients got them, nothing for stable.
    assert served_metric(url) == {CANARY: [float(n) for n in got[CANARY]]}

    with httpx.Client(timeout=10) as client:
        scraped = ScrapeSource([url], client).read()
    check_reading(scraped, got)
    # PSI and the tier mix judge the MLServer canary (no "no predictions counted").
    verdict = judge(scraped.of(CANARY), scraped.of(STABLE), RolloutThresholds(), 30)
    checks = {c.name: c for c in verdict.checks}
    assert checks["psi"].value is not None and checks["tier_mix"].value is not None
    print(
        f"\nMLServer {CANARY} vs {STABLE} on {sum(got[CANARY])} / {sum(got[STABLE])} rows: "
        f"{verdict.status.name}; {checks['psi'].detail}; {checks['tier_mix'].detail}"
    )

    if PROMETHEUS is None:
        pytest.skip("prometheus not installed (make tools): the scrape source was checked")
    targets = [gw.address, stable_replica.address]  # MLServer's /metrics has nothing of ours
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    with Prometheus(targets, workdir, interval_ms=500) as prometheus:
        rows = "sum(gateway_served_probability_rows_total)"
        prometheus.wait_until(rows, float(sum(got[CANARY])))
        prometheus.wait_until(
            "sum(model_churn_probability_count)", float(sum(got[STABLE])), timeout=30
        )
        with httpx.Client(timeout=10) as client:
            asked = PrometheusSource(prometheus.url, client).read()
    check_reading(asked, got)
    assert asked.of(CANARY).judged_probability == scraped.of(CANARY).judged_probability


# As the MLServer rollout of test_mlserver_gateway.py, with the drift checks on: PSI and the tier
# mix at their defaults. Latency against stable's stays off (MLServer answers in tens of
# milliseconds on this shared machine where our replica answers in one); its ceiling holds.
PLAN = {
    "candidate": CANARY,
    "steps": [20, 50, 100],
    "interval": "2s",
    "check_every": "500ms",
    "min_requests": 100,
    "failure_limit": 2,
    "thresholds": {"p99_ratio": None, "p99_max_ms": 1000},
}
RATE = 60.0  # requests a second, of 4 customers each


def load(url: str, stop: threading.Event, failed: list[str]) -> None:
    """/predict/batch and V2 JSON in turn at RATE until stopped (at most 90 s, 6,000
    requests)."""
    deadline = time.monotonic() + 90
    with httpx.Client(base_url=url, timeout=20) as client:
        for n in range(6000):
            if stop.is_set() or time.monotonic() > deadline:
                return
            rows = customers(ROWS, seed=n % 200)
            if n % 2:
                answer = client.post("/v2/models/churn/infer", json=v2_json(rows))
            else:
                answer = client.post("/predict/batch", json={"customers": rows})
            if answer.status_code != 200:
                failed.append(f"{answer.status_code} {answer.text[:120]}")
            stop.wait(1 / RATE)


def test_the_controller_promotes_mlserver_with_the_drift_checks_on(
    start_gateway: Callable[[str], tuple[Process, Path]], log_dir: Path
) -> None:
    gw, path = start_gateway(routing(0, PLAN))
    url = f"http://{gw.address}"
    stop, failed = threading.Event(), []
    loader = threading.Thread(target=load, args=(url, stop, failed), daemon=True)
    loader.start()
    argv = [sys.executable, "-m", "gateway", "rollout", "start", "--file", str(path)]
    controller = Proc("drift-controller", [*argv, "--gateway", url], {}, 0).start(log_dir)
    try:
        assert controller.popen is not None
        code = controller.popen.wait(120)
    finally:
        stop.set()
        loader.join(30)
        controller.stop()
    entries = [
        json.loads(line)
        for line in path.with_name(path.stem + ".rollout.jsonl").read_text().splitlines()
        if line
    ]
    assert code == 0, entries[-3:]
    assert not failed, failed[:5]
    assert [e["weight"] for e in entries if e["action"] in ("start", "advance")] == [20, 50, 100]
    # Every step advanced on a verdict whose drift checks judged MLServer's predictions.
    advanced = [e for e in entries if e["action"] == "advance"]
    assert advanced
    for entry in advanced:
        checks = {c["name"]: c for c in entry["checks"]}
        assert checks["psi"]["status"] == "PASS" and checks["psi"]["value"] is not None
        assert checks["tier_mix"]["status"] == "PASS"
    print(
        "\nrollout of MLServer with drift checks: "
        + "; ".join(
            f"{e['weight']}%: PSI {c['psi']['value']:.3f}"
            for e in advanced
            for c in [{x["name"]: x for x in e["checks"]}]
        )
    )
