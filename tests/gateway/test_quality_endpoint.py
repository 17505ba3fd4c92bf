"""GET /quality and the quality gauges: off without the prediction log, a report over the
store's labelled predictions, bad parameters named, gauges only for configured versions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.endpoints.quality import BadQuery, QualityReports, parse_window
from gateway.pool import PoolLimits
from gateway.state import GatewayState, Snapshot
from outcomes.quality.report import QualityInput
from outcomes.records import Outcome, Prediction
from outcomes.store.sqlite import SqliteStore
from routing_config import load_config
from tests.gateway.fakes import FakeReplicas, settings_for, write_routing

DAY = 86400.0


def fill(path: Path, now: float, n: int = 400) -> None:
    rng = np.random.default_rng(3)
    truth = rng.random(n)
    churned = rng.random(n) < truth
    rows, outcomes = [], []
    for i in range(n):
        t = now - 3600 + i
        served = "v2.4.0" if i % 10 == 0 else "v2.3.1"
        p = float(np.clip(truth[i] + rng.normal(0, 0.2), 0.01, 0.99))
        rows.append(Prediction(t, f"r{i}", 0, None, served, "weighted", "rev", p, "low"))
        if served == "v2.3.1" and i % 2:
            q = float(np.clip(truth[i] + rng.normal(0, 0.1), 0.01, 0.99))
            rows.append(Prediction(t, f"r{i}", 0, None, "v2.4.0", "shadow", "rev", q, "low"))
        rows.append(Prediction(t, f"x{i}", 0, None, "v9.9.9", "pinned", "rev", p, "low"))
        outcomes += [Outcome(bool(churned[i]), now, request_id=f"r{i}")]
        outcomes += [Outcome(bool(churned[i]), now, request_id=f"x{i}")]
    with SqliteStore(path) as store:
        store.write_predictions(rows)
        store.write_outcomes(outcomes, window_s=30 * DAY)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    routing = write_routing(tmp_path / "routing.yaml")
    fill(tmp_path / "predictions.sqlite3", time.time())
    settings = settings_for(
        routing, prediction_log=True, data_dir=tmp_path, quality_metrics_interval_s=1.0
    )
    with TestClient(create_app(settings, **FakeReplicas().transports())) as test_client:
        yield test_client


def test_off_without_the_prediction_log(tmp_path: Path) -> None:
    routing = write_routing(tmp_path / "routing.yaml")
    app = create_app(settings_for(routing), **FakeReplicas().transports())
    with TestClient(app) as client:
        answer = client.get("/quality")
    assert answer.status_code == 404
    assert answer.json()["error"] == "prediction_log_off"
    assert "GATEWAY_PREDICTION_LOG" in answer.json()["detail"]


def test_the_report_over_the_default_window(client: TestClient) -> None:
    answer = client.get("/quality")
    assert answer.status_code == 200
    report = answer.json()
    assert (report["stable"], report["candidate"]) == ("v2.3.1", "v2.4.0")
    assert report["window"]["seconds"] == pytest.approx(30 * DAY)
    assert set(report["versions"]) == {"v2.3.1", "v2.4.0", "v9.9.9"}
    assert report["versions"]["v2.3.1"]["labelled"] == 360
    assert report["versions"]["v2.4.0"]["by_assignment"]["shadow"] == 200
    assert report["comparison"]["paired"]["candidate_outcomes"] == 200
    assert report["comparison"]["unpaired"]["candidate_outcomes"] == 40
    assert report["comparison"]["unpaired"]["auc_difference"]["interval"][0] < 0.5


def test_window_and_versions_from_the_query(client: TestClient) -> None:
    now = time.time()
    assert client.get("/quality", params={"window": "10m"}).json()["versions"] == {}
    report = client.get("/quality", params={"since": now - 7200, "until": now + 1}).json()
    assert report["versions"]["v2.3.1"]["labelled"] == 360
    swapped = client.get("/quality", params={"stable": "v2.4.0", "candidate": "v2.3.1"}).json()
    assert (swapped["stable"], swapped["candidate"]) == ("v2.4.0", "v2.3.1")
    assert swapped["comparison"]["paired"] is None  # v2.3.1 never shadowed v2.4.0


@pytest.mark.parametrize(
    "params",
    [
        {"window": "5s"},
        {"window": "400d"},
        {"window": "soon"},
        {"since": "yesterday"},
        {"since": "100", "until": "50"},
        {"candidate": "x" * 300},
    ],
)
def test_bad_parameters_are_named(client: TestClient, params: dict[str, str]) -> None:
    answer = client.get("/quality", params=params)
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_query"
    assert answer.json()["detail"].split(":")[0] in {"window", "since", "until", "candidate"}


def test_parse_window() -> None:
    assert parse_window("90s") == 90
    assert parse_window("24h") == 86400
    assert parse_window("7d") == 7 * 86400
    assert parse_window("3600") == 3600
    with pytest.raises(BadQuery):
        parse_window("1w")


def test_gauges_only_for_configured_versions_and_not_per_scrape(client: TestClient) -> None:
    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline:
        text = client.get("/metrics").text
        if 'gateway_quality_auc{version="v2.3.1"}' in text:
            break
        time.sleep(0.05)
    assert 'gateway_quality_auc{version="v2.3.1"}' in text
    assert 'gateway_quality_brier{version="v2.4.0"}' in text
    assert 'gateway_quality_labelled{version="v2.3.1"} 360.0' in text
    assert "v9.9.9" not in text


class CountingLog:
    def __init__(self) -> None:
        self.reads = 0

    def quality_input(self, **kwargs: object) -> QualityInput:
        self.reads += 1
        return QualityInput(stable=str(kwargs["stable"]), candidate=None, versions=())


def test_the_gauges_report_is_recomputed_at_most_every_interval(tmp_path: Path) -> None:
    routing = write_routing(tmp_path / "routing.yaml")
    settings = settings_for(routing, prediction_log=True, quality_metrics_interval_s=3600)
    state = GatewayState(
        snapshot=Snapshot.build(load_config(routing), resolve=settings.resolve, limits=PoolLimits())
    )
    fake = CountingLog()
    reports = QualityReports(state, fake, settings)  # type: ignore[arg-type]
    assert reports.for_metrics() is None  # the first scrape starts it, and does not wait
    deadline = time.monotonic() + 5
    while reports.for_metrics() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    for _ in range(50):
        assert reports.for_metrics() is not None
    assert fake.reads == 1
