"""The status page's numbers (GET /stats) from fake counters and a fake clock: no network."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter

from gateway.app import create_app, request_counts
from gateway.metrics import AnsweredRequests, GatewayMetrics
from gateway.metrics_share import SharedCounters
from gateway.stats import Sample, StatsSampler, VersionCounts, bucket_quantile, read_counts
from measures.request_counts import RequestCounts
from tests.gateway.fakes import FakeReplicas, settings_for, write_routing
from vocabulary.buckets import GATEWAY_LATENCY_BUCKETS as LATENCY_BUCKETS

CONFIGURED = {"v2.3.1": 90, "v2.4.0": 10}


class FakeGateway:
    """The two collectors the sampler reads, tallied by hand, and a clock moved by hand."""

    def __init__(self) -> None:
        self.answered = AnsweredRequests(LATENCY_BUCKETS)
        self.fallbacks = Counter(
            "gateway_fallbacks", "", ["from_version", "to_version", "cause"], registry=None
        )
        self.now = 1_000_000.0
        self.sampler = StatsSampler(self.families, clock=lambda: self.now, size=600)

    def families(self) -> list:
        return [*self.answered.collect(), *self.fallbacks.collect()]

    def answer(self, version: str, count: int, status: int = 200, seconds: float = 0.004) -> None:
        for _ in range(count):
            self.answered.record(version, "weighted", status, seconds)

    def tick(self, seconds: float = 1.0) -> None:
        self.now += seconds
        self.sampler.sample()


def rows(document: dict) -> dict[str, dict]:
    return {row["version"]: row for row in document["versions"]}


@pytest.fixture
def gw() -> FakeGateway:
    fake = FakeGateway()
    fake.sampler.sample()
    return fake


def test_read_counts_are_the_judges_requests_and_errors(gw: FakeGateway) -> None:
    """Requests and errors per version as measures/request_counts.py defines them: stable's
    answers on another version's behalf are that version's requests and errors, not stable's."""
    gw.answer("v2.3.1", 7)
    gw.answer("v2.3.1", 2, status=503)
    gw.answer("v2.3.1", 1, status=422)  # a client error is not the version's error
    gw.answered.record("v2.3.1", "weighted", 599, 0.2)  # an unregistered code: label "5xx"
    for _ in range(3):  # v2.4.0 failed three requests that stable then answered
        gw.answered.record("v2.3.1", "fallback", 200, 0.2)
    gw.fallbacks.labels("v2.4.0", "v2.3.1", "status_5xx").inc(3)
    counts = read_counts(gw.families())
    stable, canary = counts["v2.3.1"].requests, counts["v2.4.0"].requests
    assert (stable.requests, stable.answered_5xx, stable.errors) == (11, 3, 3)
    assert (canary.requests, canary.saved_by_fallback, canary.errors) == (3, 3, 3)
    assert canary.answered_5xx == 0
    bounds = [bound for bound, _ in counts["v2.3.1"].buckets]
    assert bounds == [*LATENCY_BUCKETS, math.inf]
    # Latency is of every answer the version gave, its answers on v2.4.0's behalf included.
    assert counts["v2.3.1"].buckets[-1][1] == 14  # cumulative: +Inf holds every answer


def test_shares_rates_and_errors_over_the_window(gw: FakeGateway) -> None:
    for _ in range(10):
        gw.answer("v2.3.1", 9)
        gw.answer("v2.4.0", 1, status=500)
        gw.tick()
    gw.fallbacks.labels("v2.4.0", "v2.3.1", "status_5xx").inc(4)
    gw.tick()
    document = gw.sampler.describe(CONFIGURED)
    assert document["window_s"] == 11
    stable, canary = rows(document)["v2.3.1"], rows(document)["v2.4.0"]
    assert (stable["configured_percent"], canary["configured_percent"]) == (90, 10)
    # The four requests v2.4.0 failed and stable saved are v2.4.0's: routed 14 of 104.
    assert (stable["served_percent"], canary["served_percent"]) == (86.54, 13.46)
    assert (stable["requests"], canary["requests"]) == (90, 14)
    assert stable["rps"] == pytest.approx(90 / 11, abs=1e-3)
    assert (stable["error_rate"], canary["error_rate"]) == (0.0, 1.0)
    assert (canary["answered_5xx"], canary["saved_by_fallback"], canary["errors"]) == (10, 4, 14)
    assert (stable["answered_5xx"], stable["saved_by_fallback"]) == (0, 0)


def test_only_the_last_minute_counts(gw: FakeGateway) -> None:
    gw.answer("v2.4.0", 500)  # before the window: must not show in the shares
    gw.tick()
    for _ in range(90):
        gw.answer("v2.3.1", 1)
        gw.tick()
    document = gw.sampler.describe(CONFIGURED)
    assert document["window_s"] == 60
    assert rows(document)["v2.4.0"]["requests"] == 0
    assert rows(document)["v2.3.1"]["served_percent"] == 100.0
    assert rows(document)["v2.3.1"]["rps"] == 1.0


def test_latency_quantiles_come_from_the_window_not_from_all_time(gw: FakeGateway) -> None:
    gw.answer("v2.3.1", 1000, seconds=2.0)  # old and slow
    gw.tick(61)
    gw.answer("v2.3.1", 99, seconds=0.004)
    gw.answer("v2.3.1", 1, seconds=0.4)
    gw.tick(59)
    stable = rows(gw.sampler.describe(CONFIGURED))["v2.3.1"]
    assert 2.5 < stable["p50_ms"] <= 5.0  # the 0.0025-0.005 bucket
    assert 2.5 < stable["p99_ms"] <= 5.0  # rank 99 of 100 is still in it
    gw.answer("v2.3.1", 10, seconds=0.4)
    gw.tick()
    assert 250 < rows(gw.sampler.describe(CONFIGURED))["v2.3.1"]["p99_ms"] <= 500


def test_bucket_quantile_interpolates_like_prometheus() -> None:
    buckets = [(0.1, 50.0), (0.2, 100.0), (math.inf, 100.0)]
    assert bucket_quantile(buckets, 0.5) == pytest.approx(0.1)
    assert bucket_quantile(buckets, 0.75) == pytest.approx(0.15)
    assert bucket_quantile(buckets, 0.25) == pytest.approx(0.05)
    # in +Inf: the highest finite bound
    assert bucket_quantile([(0.1, 0.0), (math.inf, 10.0)], 0.99) == 0.1
    assert bucket_quantile([(0.1, 0.0), (math.inf, 0.0)], 0.5) is None
    assert bucket_quantile([], 0.5) is None


def test_series_shows_a_weight_change_as_a_step(gw: FakeGateway) -> None:
    for second in range(20):
        gw.answer("v2.4.0", 2 if second < 10 else 8)
        gw.tick()
    series = gw.sampler.describe(CONFIGURED)["series"]
    assert len(series["times"]) == 20
    assert series["rps"]["v2.4.0"] == [2.0] * 10 + [8.0] * 10
    assert series["rps"]["v2.3.1"] == [0.0] * 20
    assert series["times"] == sorted(series["times"])


def test_ring_is_bounded() -> None:
    fake = FakeGateway()
    fake.sampler = StatsSampler(fake.families, clock=lambda: fake.now, size=30)
    for _ in range(100):
        fake.answer("v2.3.1", 1)
        fake.tick()
    assert len(fake.sampler.ring) == 30
    assert len(fake.sampler.describe(CONFIGURED)["series"]["times"]) == 29


def test_no_samples_yet_gives_no_numbers_rather_than_zeros() -> None:
    sampler = StatsSampler(list)
    document = sampler.describe(CONFIGURED)
    assert [row["version"] for row in document["versions"]] == ["v2.3.1", "v2.4.0"]
    assert all(row["rps"] is None and row["served_percent"] is None for row in document["versions"])
    sampler.sample()
    assert sampler.describe(CONFIGURED)["versions"][0]["rps"] is None  # one sample: no interval


def test_a_version_no_longer_configured_shows_only_while_it_served(gw: FakeGateway) -> None:
    gw.answer("v2.2.0", 5)
    gw.answer("none", 3, status=400)  # errors before a version was chosen have no row
    gw.tick()
    assert [row["version"] for row in gw.sampler.describe(CONFIGURED)["versions"]] == [
        "v2.3.1",
        "v2.4.0",
        "v2.2.0",
    ]
    gw.tick(61)
    gw.tick()
    assert [row["version"] for row in gw.sampler.describe(CONFIGURED)["versions"]] == [
        "v2.3.1",
        "v2.4.0",
    ]


def test_counts_that_go_back_never_give_negative_rates() -> None:
    sampler = StatsSampler(list)
    # A worker's file vanished between the second and third sample: the sum dropped.
    for at, requests in [(0.0, 5.0), (1.0, 9.0), (2.0, 2.0), (3.0, 4.0)]:
        sampler.add(Sample(at, {"v2.3.1": VersionCounts(RequestCounts(requests))}))
    document = sampler.describe(CONFIGURED)
    assert document["series"]["rps"]["v2.3.1"] == [4.0, 0.0, 2.0]
    assert rows(document)["v2.3.1"]["requests"] == 0  # 4 - 5 over the window: not -1


def test_several_workers_are_summed(tmp_path: Path) -> None:
    workers = [GatewayMetrics(CollectorRegistry()) for _ in range(2)]
    shares = [SharedCounters(tmp_path, m.counted()) for m in workers]
    workers[0].answered.record("v2.3.1", "weighted", 200, 0.01)
    for _ in range(3):
        workers[1].answered.record("v2.3.1", "weighted", 502, 0.01)
    workers[1].fallbacks.labels("v2.4.0", "v2.3.1", "connect_error").inc()
    for share in shares:
        share.write()
    counts = read_counts(request_counts(workers[0], shares[0]))
    stable = counts["v2.3.1"].requests
    assert (stable.requests, stable.errors) == (4, 3)
    assert counts["v2.4.0"].requests.saved_by_fallback == 1
    alone = read_counts(request_counts(workers[0], None))
    assert alone["v2.3.1"].requests.requests == 1


def test_stats_and_ui_are_served(tmp_path: Path) -> None:
    path = write_routing(tmp_path / "routing.yaml")
    fakes = FakeReplicas()
    with TestClient(create_app(settings_for(path), **fakes.transports())) as client:
        for _ in range(5):
            assert client.post("/predict", json={"tenure": 1}).status_code == 200
        document = client.get("/stats").json()
        configured = {r["version"]: r["configured_percent"] for r in document["versions"]}
        assert configured == client.get("/routing").json()["weights"]
        assert document["rollout_log"] is None
        # The verdict line the page shows first and `streamflow status` prints first.
        assert document["verdict"]["state"] == "no_plan"
        assert document["verdict"]["text"].startswith("no rollout: ")
        assert set(document["series"]) == {"times", "rps"}
        page = client.get("/ui")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        for asset in ("ui.js", "ui.css"):
            assert f"ui/assets/{asset}" in page.text
            assert client.get(f"/ui/assets/{asset}").status_code == 200
        assert "/stats" in client.get("/openapi.json").json()["paths"]


def test_the_rollout_log_gives_the_last_decisions_and_only_what_the_page_shows(tmp_path):
    from gateway.stats import ROLLOUT_LOG_ENTRIES, read_rollout_log
    from rollout.log import DecisionLog, default_log_path

    routing = tmp_path / "routing.yaml"
    assert read_rollout_log(routing) is None  # no rollout has run
    log = DecisionLog(default_log_path(routing))  # where the controller writes it
    for step in range(15):
        log.append({"by": "controller", "step": step, "weight": 5, "verdict": "PASS",
                    "phase": "step", "action": "hold", "reason": f"check {step}",
                    "baselines": {"huge": list(range(1000))}})  # fmt: skip
    with open(default_log_path(routing), "ab") as handle:
        handle.write(b'{"torn": ')  # a line still being written
    entries = read_rollout_log(routing)
    assert entries is not None and len(entries) == ROLLOUT_LOG_ENTRIES
    assert [e["step"] for e in entries] == list(range(5, 15))
    assert all("baselines" not in e and e["time"] for e in entries)
    assert entries[-1]["reason"] == "check 14" and entries[-1]["verdict"] == "PASS"
    assert entries[-1]["phase"] == "step"  # the page names a shadow bake or reference window
    # Each check's words and evidence, for the page to say what was compared.
    check = {"name": "error_rate", "status": "PASS", "value": 0.0, "detail": "evidence 0.4",
             "evidence": 0.4, "bar": 1000.0, "threshold": 0.01}  # fmt: skip
    halted = tmp_path / "halted" / "routing.yaml"
    halted.parent.mkdir()
    DecisionLog(default_log_path(halted)).append(
        {"by": "controller", "action": "halt", "verdict": "HALTED", "checks": [check]}
    )
    last = read_rollout_log(halted)[-1]  # type: ignore[index]
    assert last["action"] == "halt"
    assert last["checks"] == [
        {k: check[k] for k in ("name", "status", "detail", "evidence", "bar")}
    ]
