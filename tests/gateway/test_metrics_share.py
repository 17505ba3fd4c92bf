"""Counters of several worker processes summed through snapshot files (gateway/metrics_share.py).

Each ``Worker`` here stands for one gateway worker process: metrics of its own and a snapshot
file of its own in a shared directory, as ``serve --workers N`` gives them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import create_app
from gateway.metrics import GatewayMetrics
from gateway.metrics_share import SharedCounters, encode, remove_snapshots, take_snapshot
from gateway.settings import GatewaySettings
from tests.gateway.fakes import FakeReplicas, settings_for, write_routing

PROMTOOL = shutil.which("promtool")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Worker:
    def __init__(self, directory: Path) -> None:
        self.metrics = GatewayMetrics(CollectorRegistry())
        self.shared = SharedCounters(directory, self.metrics.counted())
        self.registry = CollectorRegistry()
        self.registry.register(self.shared)

    def scrape(self) -> str:
        return generate_latest(self.registry).decode()


def samples(text: str, *, created: bool = False) -> Samples:
    """Every sample of an exposition by name and label set (``_created`` only if asked)."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_created") != created:
                continue
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text, created=name.endswith("_created"))[(name, frozenset(labels.items()))]


def headers(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("#")]


def traffic_a(m: GatewayMetrics) -> None:
    for seconds in (0.0005, 0.003, 0.003, 0.2):
        m.answered.record("v2.3.1", "weighted", 200, seconds)
    m.answered.record("v2.4.0", "weighted", 200, 0.04)
    m.answered.record("v2.3.1", "pinned", 503, 1.5)
    m.upstream_errors.labels("v2.4.0", "http://canary-a:8000", "timeout").inc(2)
    m.fallbacks.labels("v2.4.0", "v2.3.1", "timeout").inc()
    m.served.record("v2.4.0", np.array([0.05, 0.55, 0.95]))
    m.reloads.inc()


def traffic_b(m: GatewayMetrics) -> None:
    for seconds in (0.002, 0.2, 7.0):
        m.answered.record("v2.3.1", "weighted", 200, seconds)
    m.answered.record("v9", "pinned", 200, 0.001)  # a label set worker A never saw
    m.upstream_errors.labels("v2.4.0", "http://canary-a:8000", "timeout").inc()
    m.upstream_errors.labels("v2.3.1", "http://stable-b:8000", "status_5xx").inc()
    m.ejections.labels("v2.3.1", "http://stable-b:8000").inc()
    m.served.record("v2.4.0", np.array([0.55]))
    m.served.record("v9", np.array([0.3]))
    m.reloads.inc()
    m.reload_failures.inc()


def reference(*traffic: Callable[[GatewayMetrics], None]) -> str:
    """What a single worker that saw all the traffic reports."""
    one = GatewayMetrics(CollectorRegistry())
    for apply in traffic:
        apply(one)
    return generate_latest(one.registry).decode()


def test_two_workers_report_what_one_worker_with_all_the_traffic_would(tmp_path: Path) -> None:
    a, b = Worker(tmp_path), Worker(tmp_path)
    traffic_a(a.metrics)
    traffic_b(b.metrics)
    b.shared.write()
    expected = reference(traffic_a, traffic_b)
    for worker in (a, b):  # whichever worker the scrape lands on
        text = worker.scrape()
        assert samples(text) == samples(expected)
        # Same families, types and help texts, in the same order, as a single worker's.
        assert headers(text) == headers(expected)
        # The served probability bins add up per version and bin, as the other counters do.
        served = "gateway_served_probability_rows_total"
        assert value(text, served, version="v2.4.0", bin="0.5-0.6") == 2
        assert value(text, served, version="v2.4.0", bin="0.0-0.1") == 1
        assert value(text, served, version="v9", bin="0.2-0.3") == 1


def test_histogram_buckets_count_and_sum_add_up_per_label_set(tmp_path: Path) -> None:
    a, b = Worker(tmp_path), Worker(tmp_path)
    a.metrics.answered.record("v1", "weighted", 200, 0.003)
    b.metrics.answered.record("v1", "weighted", 200, 0.3)
    b.metrics.answered.record("v2", "weighted", 200, 0.3)
    b.shared.write()
    text = a.scrape()
    bucket = "gateway_request_duration_seconds_bucket"
    assert value(text, bucket, version="v1", le="0.0025") == 0
    assert value(text, bucket, version="v1", le="0.005") == 1
    assert value(text, bucket, version="v1", le="0.5") == 2
    assert value(text, bucket, version="v1", le="+Inf") == 2
    assert value(text, "gateway_request_duration_seconds_count", version="v1") == 2
    assert value(text, "gateway_request_duration_seconds_sum", version="v1") == pytest.approx(0.303)
    # v2 only ever reached worker B and is still there, whole.
    assert value(text, bucket, version="v2", le="0.25") == 0
    assert value(text, bucket, version="v2", le="0.5") == 1
    assert value(text, "gateway_request_duration_seconds_count", version="v2") == 1


def test_label_sets_of_one_worker_survive(tmp_path: Path) -> None:
    a, b = Worker(tmp_path), Worker(tmp_path)
    traffic_a(a.metrics)
    traffic_b(b.metrics)
    b.shared.write()
    text = a.scrape()
    requests = "gateway_requests_total"
    assert value(text, requests, version="v9", reason="pinned", status="200") == 1  # B only
    assert value(text, requests, version="v2.3.1", reason="pinned", status="503") == 1  # A only
    assert value(text, requests, version="v2.3.1", reason="weighted", status="200") == 7  # both
    fallbacks = "gateway_fallbacks_total"
    assert value(text, fallbacks, from_version="v2.4.0", to_version="v2.3.1", cause="timeout") == 1
    errors = "gateway_upstream_errors_total"
    replica = "http://canary-a:8000"
    assert value(text, errors, version="v2.4.0", replica=replica, cause="timeout") == 3
    assert value(text, "gateway_config_reloads_total") == 2
    assert value(text, "gateway_config_reload_failures_total") == 1


def test_created_is_the_earliest_not_a_sum(tmp_path: Path) -> None:
    a = Worker(tmp_path)
    a.metrics.reloads.inc()
    own = value(a.scrape(), "gateway_config_reloads_created")
    earlier = {"gateway_config_reloads": [("gateway_config_reloads_created", {}, 1000.0)]}
    (tmp_path / "worker-1-old.json").write_bytes(encode(earlier))
    assert value(a.scrape(), "gateway_config_reloads_created") == 1000.0
    assert own > 1000.0


def test_a_dead_workers_file_still_counts(tmp_path: Path) -> None:
    a, b = Worker(tmp_path), Worker(tmp_path)
    b.metrics.answered.record("v1", "weighted", 200, 0.01)
    b.metrics.answered.record("v1", "weighted", 200, 0.01)
    b.shared.write()
    del b  # the process is gone; its last file stays
    restarted = Worker(tmp_path)  # uvicorn's replacement, same pid here: a file of its own
    restarted.metrics.answered.record("v1", "weighted", 200, 0.01)
    restarted.shared.write()  # its first interval
    a.metrics.answered.record("v1", "weighted", 200, 0.01)
    for worker in (a, restarted):
        text = worker.scrape()
        labels = {"version": "v1", "reason": "weighted", "status": "200"}
        assert value(text, "gateway_requests_total", **labels) == 4
        assert value(text, "gateway_request_duration_seconds_count", version="v1") == 4
    assert len(list(tmp_path.glob("worker-*.json"))) == 3


def test_scrapes_alternating_between_workers_never_go_back(tmp_path: Path) -> None:
    """A worker's count between two of its writes is never reported before it is on disk."""
    a, b = Worker(tmp_path), Worker(tmp_path)
    requests = ("gateway_requests_total", {"version": "v1", "reason": "weighted", "status": "200"})

    def record(worker: Worker, n: int) -> None:
        for _ in range(n):
            worker.metrics.answered.record("v1", "weighted", 200, 0.01)

    seen = []
    record(a, 3)
    a.shared.write()
    record(a, 2)  # not written yet: the next interval's
    for worker, more in [(b, 0), (a, 0), (b, 1), (a, 4), (b, 0), (b, 0), (a, 0)]:
        record(worker, more)
        seen.append(value(worker.scrape(), requests[0], **requests[1]))
    assert seen == [3, 5, 6, 10, 10, 10, 10]


def test_an_unwritable_file_keeps_scrapes_monotonic(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = Worker(tmp_path), Worker(tmp_path)
    a.metrics.answered.record("v1", "weighted", 200, 0.01)
    a.scrape()
    a.shared.path.with_name(a.shared.path.name + ".tmp").mkdir()  # every write now fails
    a.metrics.answered.record("v1", "weighted", 200, 0.01)
    with caplog.at_level(logging.WARNING, logger="gateway"):
        # What is on disk, not the live 2: a scrape on B could not see that 2.
        assert value(a.scrape(), "gateway_request_duration_seconds_count", version="v1") == 1
        assert value(b.scrape(), "gateway_request_duration_seconds_count", version="v1") == 1
        a.shared.write()
    assert len([r for r in caplog.records if "cannot write" in r.message]) == 1  # not 3


def test_unreadable_files_are_skipped_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = Worker(tmp_path), Worker(tmp_path)
    traffic_a(a.metrics)
    traffic_b(b.metrics)
    b.shared.write()
    good = b.shared.path.read_bytes()
    row = ["gateway_requests_total", {"version": "v1", "reason": "weighted", "status": "200"}]
    bad = {
        "worker-1-half.json": good[: len(good) // 2],
        "worker-2-garbage.json": b"\x00\xff not json",
        "worker-3-empty.json": b"",
        "worker-4-format.json": json.dumps({"format": 99, "families": {}}).encode(),
        "worker-5-text.json": json.dumps(
            {"format": 1, "families": {"gateway_requests": [[*row, "7"]]}}
        ).encode(),
        "worker-6-nan.json": json.dumps(
            {"format": 1, "families": {"gateway_requests": [[*row, float("nan")]]}}
        ).encode(),
        "worker-7-list.json": b"[1, 2, 3]",
    }
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "worker-8-dir.json").mkdir()
    expected = samples(reference(traffic_a, traffic_b))
    with caplog.at_level(logging.WARNING, logger="gateway"):
        for _ in range(3):
            assert samples(a.scrape()) == expected
    skipped = [r.message for r in caplog.records if "skipped" in r.message]
    assert len(skipped) == len(bad) + 1, skipped  # once each, not once per scrape


def test_samples_a_family_cannot_have_are_ignored(tmp_path: Path) -> None:
    a = Worker(tmp_path)
    odd = {
        "gateway_requests": [("gateway_requests_bucket", {"le": "1"}, 5.0)],
        "some_other_family": [("some_other_family_total", {}, 5.0)],
    }
    (tmp_path / "worker-1-odd.json").write_bytes(encode(odd))
    text = a.scrape()
    assert "gateway_requests_bucket" not in text
    assert "some_other_family" not in text


def test_unchanged_tallies_are_not_rewritten(tmp_path: Path) -> None:
    a = Worker(tmp_path)
    a.shared.write()
    first = a.shared.path.stat().st_ino
    a.shared.write()
    a.scrape()
    assert a.shared.path.stat().st_ino == first  # no new file: nothing changed
    a.metrics.answered.record("v1", "weighted", 200, 0.01)
    a.shared.write()
    assert a.shared.path.stat().st_ino != first
    assert not list(tmp_path.glob("*.tmp"))


def test_snapshot_holds_counts_only(tmp_path: Path) -> None:
    a = Worker(tmp_path)
    traffic_a(a.metrics)
    assert set(take_snapshot(a.shared.own())) == {
        "gateway_requests",
        "gateway_request_duration_seconds",
        "gateway_connections_refused",
        "gateway_request_heads_too_large",
        "gateway_client_timeouts",
        "gateway_shed_requests",
        "gateway_served_probability_rows",
        "gateway_upstream_errors",
        "gateway_fallbacks",
        "gateway_replica_ejections",
        "gateway_config_reloads",
        "gateway_config_reload_failures",
    }


def test_merged_exposition_parses_and_passes_promtool(tmp_path: Path) -> None:
    a, b = Worker(tmp_path), Worker(tmp_path)
    traffic_a(a.metrics)
    traffic_b(b.metrics)
    b.shared.write()
    text = a.scrape()
    assert len(list(text_string_to_metric_families(text))) >= 7
    if PROMTOOL is None:
        pytest.skip("promtool not installed (make test installs Debian's prometheus)")
    checked = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_remove_snapshots_leaves_other_files(tmp_path: Path) -> None:
    for name in ("worker-1-a.json", "worker-2-b.json.tmp", "notes.txt", "worker.json"):
        (tmp_path / name).write_text("x")
    remove_snapshots(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "worker.json"]


def test_empty_metrics_dir_setting_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_METRICS_DIR", "")
    assert GatewaySettings().metrics_dir is None
    monkeypatch.setenv("GATEWAY_METRICS_DIR", "/run/gateway-metrics")
    assert GatewaySettings().metrics_dir == Path("/run/gateway-metrics")


# --- in the app ---------------------------------------------------------------------------------


def test_app_with_a_metrics_dir_sums_the_workers_and_keeps_its_own_gauges(
    tmp_path: Path,
) -> None:
    shared_dir = tmp_path / "metrics"
    routing = write_routing(tmp_path / "routing.yaml", stable_weight=100, canary_weight=0)
    fakes = FakeReplicas()
    other = Worker(shared_dir)  # another worker process that answered 5
    for _ in range(5):
        other.metrics.answered.record("v2.3.1", "weighted", 200, 0.01)
    other.shared.write()
    app = create_app(settings_for(routing, metrics_dir=shared_dir), **fakes.transports())
    with TestClient(app) as client:
        assert len(list(shared_dir.glob("worker-*.json"))) == 2  # its own, from startup on
        for _ in range(3):
            assert client.post("/predict", json={"tenure": 1}).status_code == 200
        text = client.get("/metrics").text
        labels = {"version": "v2.3.1", "reason": "weighted", "status": "200"}
        assert value(text, "gateway_requests_total", **labels) == 8
        assert value(text, "gateway_request_duration_seconds_count", version="v2.3.1") == 8
        assert value(text, "gateway_route_weight_percent", version="v2.3.1") == 100
        assert "gateway_replica_healthy{" in text
        assert "gateway_config_last_reload_failed 0.0" in text
        # Same families, types and help texts as one worker's /metrics, gauges included.
        alone = create_app(settings_for(routing), **fakes.transports())
        with TestClient(alone) as single:
            single.post("/predict", json={"tenure": 1})
            assert headers(single.get("/metrics").text) == headers(text)
        for _ in range(2):
            client.post("/predict", json={"tenure": 1})
    # At shutdown the worker wrote what it answered last: 5 requests in all.
    own = [p for p in shared_dir.glob("worker-*.json") if p != other.shared.path]
    assert len(own) == 1
    assert value(other.scrape(), "gateway_requests_total", **labels) == 10
    assert own[0].name.startswith(f"worker-{os.getpid()}-")


def test_documents_of_every_worker_are_read_back(tmp_path: Path) -> None:
    reports = {"a": {"rows": 1}, "b": {"rows": 2}}
    a = SharedCounters(tmp_path, [], {"shadow": lambda: reports["a"]})
    b = SharedCounters(tmp_path, [], {"shadow": lambda: reports["b"]})
    b.write()
    reports["a"] = {"rows": 5}  # what a worker has now is what it writes before reading
    assert sorted(d["rows"] for d in a.read_documents("shadow")) == [2, 5]
    assert a.read_documents("other") == []
    (tmp_path / "worker-1-x.json").write_text("{not json")
    assert len(a.read_documents("shadow")) == 2
