"""The judge served to Argo Rollouts and Flagger: verdicts over a window per candidate, and the
HTTP answers each engine expects, from a real server on 127.0.0.1 over a fake source."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rollout.analysis import MAX_WINDOWS, Analysis, UnknownVersion
from rollout.analysis_server import MAX_BODY, AnalysisServer, flagger_status
from rollout.counts import LATENCY_BOUNDS, Snapshot, VersionCounts
from rollout.sources.base import SourceError
from routing_config import load_config

ROUTING = """\
service: s
stable: v1
mode: canary
versions:
  v1: {replicas: [http://a:8000]}
  v2: {replicas: [http://b:8000]}
canary:
  weights: {v1: 50, v2: 50}
rollout:
  candidate: v2
  steps: [50, 100]
  min_requests: 100
  thresholds: {psi: null, tier_shift: null}
"""


class Counters:
    """A source whose counters the test moves: requests and errors per version."""

    def __init__(self) -> None:
        self.totals = {"v1": [0.0, 0.0], "v2": [0.0, 0.0]}
        self.down = False

    def add(self, version: str, requests: float, errors: float = 0.0) -> None:
        self.totals[version][0] += requests
        self.totals[version][1] += errors

    def read(self) -> Snapshot:
        if self.down:
            raise SourceError("gateway down")
        out = {}
        for version, (n, errors) in self.totals.items():
            latency = tuple(0.0 if b < 0.004 else n for b in LATENCY_BOUNDS) + (n,)
            out[version] = VersionCounts(requests=n, errors=errors, latency=latency)
        return Snapshot(out)

    def took_effect(self, revision: str) -> float:
        return 0.0

    def describe(self) -> str:
        return "counters"


@pytest.fixture
def counters() -> Counters:
    return Counters()


@pytest.fixture
def analysis(tmp_path: Path, counters: Counters) -> Analysis:
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING)
    return Analysis(counters, lambda: load_config(path))


def test_pending_then_pass_over_the_window_begun_when_first_asked(
    analysis: Analysis, counters: Counters
) -> None:
    counters.add("v1", 5000, 50)  # before the window: not counted
    counters.add("v2", 5000, 4000)
    first = analysis.verdict("v2")
    assert first["status"] == "pending" and first["verdict"] == "WAITING_FOR_SAMPLES"
    assert first["samples"] == {"candidate": 0, "stable": 0}
    counters.add("v1", 1000, 2)
    counters.add("v2", 1000, 2)
    now = analysis.verdict("v2")
    assert now["status"] == "pass", now
    assert now["stable"] == "v1" and now["samples"] == {"candidate": 1000, "stable": 1000}
    names = [c["name"] for c in now["checks"]]
    assert names[0] == "error_rate" and all("value" in c for c in now["checks"])


def test_a_worse_candidate_fails(analysis: Analysis, counters: Counters) -> None:
    analysis.verdict("v2")
    counters.add("v1", 600, 1)
    counters.add("v2", 600, 120)
    verdict = analysis.verdict("v2")
    assert verdict["status"] == "fail"
    error_rate = next(c for c in verdict["checks"] if c["name"] == "error_rate")
    assert error_rate["status"] == "FAIL" and error_rate["value"] == pytest.approx(0.2)


def test_begin_starts_a_new_window(analysis: Analysis, counters: Counters) -> None:
    analysis.verdict("v2")
    counters.add("v1", 600, 1)
    counters.add("v2", 600, 120)
    assert analysis.verdict("v2")["status"] == "fail"
    analysis.begin("v2")  # a new candidate build behind the same name
    counters.add("v1", 1000)
    counters.add("v2", 1000)
    assert analysis.verdict("v2")["status"] == "pass"


def test_unknown_versions_are_named(analysis: Analysis) -> None:
    with pytest.raises(UnknownVersion, match="candidate: 'v9' is not a version"):
        analysis.verdict("v9")
    with pytest.raises(UnknownVersion, match="stable: 'v0'"):
        analysis.verdict("v2", "v0")
    with pytest.raises(UnknownVersion, match="is stable itself"):
        analysis.verdict("v1")


def test_windows_are_bounded(tmp_path: Path, counters: Counters) -> None:
    versions = "".join(f"  c{i}: {{replicas: [http://c{i}:8000]}}\n" for i in range(100))
    text = ROUTING.replace("versions:\n", "versions:\n" + versions).split("rollout:")[0]
    path = tmp_path / "many.yaml"
    path.write_text(text)
    analysis = Analysis(counters, lambda: load_config(path))
    for i in range(100):
        analysis.verdict(f"c{i}")
    assert len(analysis._windows) == MAX_WINDOWS


def test_flagger_statuses() -> None:
    assert flagger_status("rollout", "pending") == 200
    assert flagger_status("rollout", "pass") == 200
    assert flagger_status("rollout", "fail") == 412
    assert flagger_status("confirm-promotion", "pending") == 425
    assert flagger_status("confirm-promotion", "pass") == 200
    assert flagger_status("confirm-promotion", "fail") == 412


@pytest.fixture
def served(analysis: Analysis) -> Iterator[httpx.Client]:
    server = AnalysisServer(("127.0.0.1", 0), analysis)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.server_address[1]}") as client:
            yield client
    finally:
        server.shutdown()
        server.server_close()


def flagger_body(**metadata: str) -> dict[str, object]:
    return {"name": "churn", "namespace": "models", "phase": "Progressing", "metadata": metadata}


def test_over_http_argo_reads_the_status_and_flagger_the_code(
    served: httpx.Client, counters: Counters
) -> None:
    hook = flagger_body(candidate="v2", stable="v1")
    assert served.post("/flagger/pre-rollout", json=hook).status_code == 200
    r = served.get("/verdict", params={"candidate": "v2"})
    assert r.status_code == 200 and r.json()["status"] == "pending"
    assert served.post("/flagger/rollout", json=hook).status_code == 200
    assert served.post("/flagger/confirm-promotion", json=hook).status_code == 425
    counters.add("v1", 1000, 1)
    counters.add("v2", 1000, 1)
    assert served.get("/verdict?candidate=v2&stable=v1").json()["status"] == "pass"
    promote = served.post("/flagger/confirm-promotion", json=hook)
    assert promote.status_code == 200 and promote.json()["status"] == "pass"
    counters.add("v1", 1000, 1)
    counters.add("v2", 1000, 400)
    failing = served.post("/flagger/rollout", json=hook)
    assert failing.status_code == 412 and failing.json()["status"] == "fail"
    assert served.get("/verdict", params={"candidate": "v2"}).json()["status"] == "fail"


def test_over_http_bad_requests_name_the_field(served: httpx.Client, counters: Counters) -> None:
    cases = [
        (served.get("/verdict"), 400, "candidate: required"),
        (served.get("/verdict?candidate=v9"), 404, "candidate: 'v9'"),
        (served.post("/flagger/rollout", json={"name": "x"}), 400, "metadata: required"),
        (served.post("/flagger/rollout", json=flagger_body()), 400, "metadata.candidate"),
        (served.post("/flagger/rollout", content=b"{not json"), 400, "body: not JSON"),
        (served.post("/flagger/rollout", content=b"x" * (MAX_BODY + 1)), 413, "body: over"),
        (served.get("/nowhere"), 404, "no such path"),
    ]
    for response, status, said in cases:
        assert response.status_code == status, response.text
        assert said in response.json()["error"]
    counters.down = True
    down = served.get("/verdict?candidate=v2")
    assert down.status_code == 503 and "metrics unavailable: gateway down" in down.json()["error"]
