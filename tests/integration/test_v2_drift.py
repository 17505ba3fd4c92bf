"""A version served by a real MLServer is judged on prediction drift like ours: the gateway
counts the probabilities MLServer's answers served its clients (gateway_served_probability_rows),
and both controller sources, a scrape and a real Prometheus, read them for that version, where
our replica's own histogram (model_churn_probability) stays stable's.

Stable is v2.3.1 on our replica; the canary, v2.4.0, is that version's artifact exported by
``streamflow export mlserver`` and served by MLServer's scikit-learn runtime (``protocol: v2``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
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
from tests.integration.mlserver import MLServer
from tests.integration.procs import Process, gateway, replica, wait_for
from tests.integration.prometheus import PROMETHEUS, Prometheus
from vocabulary.buckets import PROBABILITY_BIN_LABELS

STABLE, CANARY = "v2.3.1", "v2.4.0"
STABLE_HOST, CANARY_HOST = "model-v2-3-1-a:8000", "mlserver-a:8080"
ROUTING = f"""\
service: streamflow-churn
stable: {STABLE}
mode: canary
versions:
  {STABLE}:
    replicas: [http://{STABLE_HOST}]
  {CANARY}:
    replicas: [http://{CANARY_HOST}]
    protocol: v2
    score: {{output: predict_proba, column: 1}}
canary:
  weights: {{{STABLE}: 50, {CANARY}: 50}}
"""
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
    proc = replica("drift-model-v2-3-1-a", STABLE, artifacts_dir).start(log_dir)
    try:
        wait_for(f"http://{proc.address}/ready")
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def canary_mlserver(
    artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory, log_dir: Path
) -> Iterator[MLServer]:
    exported = export_version(artifacts_dir, CANARY, tmp_path_factory.mktemp("drift-export"))
    server = MLServer(exported.directory, log_dir / "drift-mlserver", name="drift-mlserver")
    try:
        yield server.start().wait_ready()
    finally:
        server.stop()


@pytest.fixture
def gw(
    stable_replica: Process, canary_mlserver: MLServer, tmp_path: Path, log_dir: Path
) -> Iterator[Process]:
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING)
    resolve = {STABLE_HOST: stable_replica.address, CANARY_HOST: canary_mlserver.address}
    proc = gateway(path, resolve, health_interval_s=0.5).start(log_dir)
    try:
        wait_for(f"http://{proc.address}/ready", timeout=30)
        # Until MLServer's replica passed its first V2 health check (readiness, version).
        wait_for(f"http://{proc.address}/v2/models/churn/versions/{CANARY}/ready", timeout=30)
        yield proc
    finally:
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
    gw: Process, stable_replica: Process, tmp_path: Path
) -> None:
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
