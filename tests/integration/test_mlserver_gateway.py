"""A real MLServer 1.7.1 as a version behind the gateway, beside one of our replicas, driven by
``tritonclient.http`` as ML teams call a V2 server.

Stable is v2.3.1 on our replica; the canary, v2.4.0, is that version's artifact exported by
``streamflow export mlserver`` and served by MLServer's scikit-learn runtime (``protocol: v2``,
its score in column 1 of ``predict_proba``). MLServer speaks JSON only: tritonclient's default
binary tensors reach it translated by the gateway.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
import tritonclient.http as triton
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from measures.request_counts import request_counts
from model_server.features import encode_rows
from model_server.mlserver_export import export_version
from model_server.schemas import EXAMPLE_CUSTOMER, ChurnPredictionRequest
from model_server.v2_rows import INPUTS
from protocols.v2.codec import INFERENCE_HEADER, InferRequest, Tensor, encode_request
from routing_config import parse_config
from tests.integration.fake_replicas import Proc
from tests.integration.mlserver import MLServer
from tests.integration.procs import Process, gateway, replica, wait_for

STABLE, CANARY = "v2.3.1", "v2.4.0"
STABLE_HOST, CANARY_HOST = "model-v2-3-1-a:8000", "mlserver-a:8080"
STICKY = "X-Customer-Id"
# Shares: the sticky hash of a fixed set of keys is deterministic, so a share is not a random
# draw here; the tolerance is what 4 standard deviations of a binomial of that many keys allow.
SHARE_KEYS = 600
SHARE_TOLERANCE = 0.075
_DTYPES = {"INT64": np.int64, "FP64": np.float64, "BOOL": np.bool_, "BYTES": np.object_}


@pytest.fixture(scope="module")
def stable_replica(artifacts_dir: Path, log_dir: Path) -> Iterator[Process]:
    with replica("model-v2-3-1-a", STABLE, artifacts_dir).running(log_dir) as proc:
        yield proc


@pytest.fixture(scope="module")
def canary_mlserver(
    artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory, log_dir: Path
) -> Iterator[MLServer]:
    exported = export_version(artifacts_dir, CANARY, tmp_path_factory.mktemp("export-v2-4-0"))
    server = MLServer(exported.directory, log_dir / "mlserver-canary", name="mlserver-v2-4-0")
    with server.running():
        yield server


def routing_text(
    weights: dict[str, int],
    *,
    shadow: int | None = None,
    rollout: dict[str, Any] | None = None,
) -> str:
    text = (
        f"service: streamflow-churn\nmodel: churn\nstable: {STABLE}\nmode: canary\nversions:\n"
        f"  {STABLE}:\n    replicas: [http://{STABLE_HOST}]\n"
        f"  {CANARY}:\n    replicas: [http://{CANARY_HOST}]\n"
        "    protocol: v2\n    score: {output: predict_proba, column: 1}\n"
        f"canary:\n  weights: {{{STABLE}: {weights[STABLE]}, {CANARY}: {weights[CANARY]}}}\n"
        f"  sticky_header: {STICKY}\n"
        f"pinning: {{header: X-Model-Version, allow: [{STABLE}, {CANARY}]}}\n"
    )
    if shadow is not None:
        text += f"shadow: {{version: {CANARY}, percent: {shadow}}}\n"
    if rollout is not None:
        text += f"rollout: {json.dumps(rollout)}\n"
    return text


@dataclass
class Gateway:
    proc: Process
    path: Path

    @property
    def url(self) -> str:
        return f"http://{self.proc.address}"

    def set_weights(self, weights: dict[str, int]) -> None:
        """Rewrite routing.yaml and wait until the gateway serves the new revision."""
        text = routing_text(weights)
        if text == self.path.read_text():
            return
        old = httpx.get(f"{self.url}/routing", timeout=5).json()["revision"]
        self.path.write_text(text)
        deadline = time.monotonic() + 10
        while httpx.get(f"{self.url}/routing", timeout=5).json()["revision"] == old:
            assert time.monotonic() < deadline, "the gateway did not reload routing.yaml"
            time.sleep(0.05)


@pytest.fixture
def start_gateway(
    stable_replica: Process, canary_mlserver: MLServer, tmp_path: Path, log_dir: Path
) -> Iterator[Callable[..., Gateway]]:
    running: list[Process] = []

    def start(text: str, **settings: object) -> Gateway:
        path = tmp_path / f"routing-{len(running)}.yaml"
        path.write_text(text)
        resolve = {STABLE_HOST: stable_replica.address, CANARY_HOST: canary_mlserver.address}
        settings = {"reload_interval_s": 0.2, "health_interval_s": 0.5, **settings}
        proc = gateway(path, resolve, **settings).start(log_dir)
        running.append(proc)
        wait_for(f"http://{proc.address}/ready", timeout=30)
        started = Gateway(proc, path)
        # Until MLServer's replica passed its first V2 health check (readiness and version).
        wait_until_served(started, CANARY)
        return started

    yield start
    for proc in running:
        proc.stop()


def wait_until_served(gw: Gateway, version: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    client = triton.InferenceServerClient(gw.proc.address)
    try:
        while True:
            try:
                client.infer("churn", triton_inputs([EXAMPLE_CUSTOMER]), model_version=version)
                return
            except InferenceServerException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        client.close()


def customers(count: int, seed: int = 11) -> list[dict[str, Any]]:
    """Varied valid customers (the same every run)."""
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


def triton_inputs(rows: list[dict[str, Any]], *, binary: bool = True) -> list[triton.InferInput]:
    """One InferInput per model-API field, shape [n]; binary tensors unless told (the client's
    default)."""
    inputs = []
    for name, datatype in INPUTS.items():
        tensor = triton.InferInput(name, [len(rows)], datatype)
        data = np.asarray([row[name] for row in rows], dtype=_DTYPES[datatype])
        tensor.set_data_from_numpy(data, binary_data=binary)
        inputs.append(tensor)
    return inputs


def artifact_probabilities(artifacts: Path, version: str, rows: list[dict[str, Any]]) -> Any:
    model = joblib.load(artifacts / version / "model.joblib")
    matrix = encode_rows([ChurnPredictionRequest(**row) for row in rows])
    return model.predict_proba(matrix)[:, 1]


def test_tritonclient_binary_and_json_reach_both_versions(
    start_gateway: Callable[..., Gateway], artifacts_dir: Path
) -> None:
    gw = start_gateway(routing_text({STABLE: 50, CANARY: 50}))
    rows = customers(40)
    expected = {v: artifact_probabilities(artifacts_dir, v, rows) for v in (STABLE, CANARY)}
    client = triton.InferenceServerClient(gw.proc.address)
    try:
        for binary in (True, False):
            for version in (STABLE, CANARY):
                result = client.infer(
                    "churn",
                    triton_inputs(rows, binary=binary),
                    model_version=version,
                    request_id=f"pin-{version}-{binary}",
                )
                answer = result.get_response()
                assert answer["model_name"] == "churn"
                assert answer["model_version"] == version
                assert answer["id"] == f"pin-{version}-{binary}"
                probability = result.as_numpy("churn_probability")
                assert probability is not None and probability.shape == (len(rows),)
                # Our replica answers to 4 places, as /predict; MLServer's in full.
                places = 4 if version == STABLE else 12
                assert np.max(np.abs(probability - np.round(expected[version], places))) <= 1e-9
                tiers = result.as_numpy("risk_tier")
                assert tiers is not None and {t.decode() for t in tiers} <= {
                    "low",
                    "medium",
                    "high",
                }
    finally:
        client.close()


def test_tritonclient_sees_one_model_with_both_versions(
    start_gateway: Callable[..., Gateway],
) -> None:
    gw = start_gateway(routing_text({STABLE: 90, CANARY: 10}))
    client = triton.InferenceServerClient(gw.proc.address)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
        assert client.is_model_ready("churn")
        assert all(client.is_model_ready("churn", version) for version in (STABLE, CANARY))
        metadata = client.get_model_metadata("churn")
        assert metadata["versions"] == [STABLE, CANARY]
        assert [(t["name"], t["datatype"]) for t in metadata["inputs"]] == list(INPUTS.items())
        # MLServer's own metadata, through the versioned path: the same inputs (the contract).
        theirs = client.get_model_metadata("churn", CANARY)
        assert theirs["versions"] == [CANARY]
        assert [(t["name"], t["datatype"]) for t in theirs["inputs"]] == list(INPUTS.items())
        with pytest.raises(InferenceServerException, match="churn"):
            client.get_model_metadata("attrition")
    finally:
        client.close()
    contract = httpx.get(f"{gw.url}/routing", timeout=5).json()["input_contract"]
    assert contract["versions"] == {STABLE: {"status": "agrees"}, CANARY: {"status": "agrees"}}


@dataclass
class Tally:
    by_version: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    key_version: dict[str, str] = field(default_factory=dict)

    @property
    def answered(self) -> int:
        return sum(self.by_version.values())


def send(gw: Gateway, keys: list[str], *, binary: bool = True, version: str = "") -> Tally:
    """One tritonclient request per sticky key, one customer each; answers tallied by version."""
    tally = Tally()
    client = triton.InferenceServerClient(gw.proc.address)
    inputs = triton_inputs([EXAMPLE_CUSTOMER], binary=binary)
    try:
        for key in keys:
            try:
                result = client.infer("churn", inputs, model_version=version, headers={STICKY: key})
            except InferenceServerException as exc:
                tally.failed[str(exc)[:120]] += 1
                continue
            served = result.get_response()["model_version"]
            tally.by_version[served] += 1
            tally.key_version[key] = served
    finally:
        client.close()
    return tally


def test_shares_follow_the_weights(start_gateway: Callable[..., Gateway]) -> None:
    gw = start_gateway(routing_text({STABLE: 70, CANARY: 30}))
    keys = [f"share-{i}" for i in range(SHARE_KEYS)]
    tally = send(gw, keys[: SHARE_KEYS // 2])
    json_tally = send(gw, keys[SHARE_KEYS // 2 :], binary=False)
    assert not tally.failed and not json_tally.failed
    canary = (tally.by_version[CANARY] + json_tally.by_version[CANARY]) / SHARE_KEYS
    print(f"\nMLServer canary at 30%: {canary:.1%} of {SHARE_KEYS} sticky keys")
    assert abs(canary - 0.30) <= SHARE_TOLERANCE


def test_sticky_keys_never_move_back_as_the_weight_rises(
    start_gateway: Callable[..., Gateway],
) -> None:
    gw = start_gateway(routing_text({STABLE: 95, CANARY: 5}))
    keys = [f"sticky-{i}" for i in range(300)]
    previous: set[str] = set()
    shares = []
    for weight in (5, 20, 50, 80):
        gw.set_weights({STABLE: 100 - weight, CANARY: weight})
        tally = send(gw, keys, binary=weight % 2 == 0)
        assert not tally.failed
        on_canary = {k for k, v in tally.key_version.items() if v == CANARY}
        assert previous <= on_canary, f"keys moved back to stable at {weight}%"
        # Asked again at the same weight: every key where it was.
        again = send(gw, keys[:50], binary=False)
        assert all(again.key_version[k] == tally.key_version[k] for k in keys[:50])
        previous = on_canary
        shares.append(len(on_canary) / len(keys))
    assert shares == sorted(shares) and shares[-1] > shares[0]


def test_a_versioned_path_always_answers_with_that_version(
    start_gateway: Callable[..., Gateway],
) -> None:
    gw = start_gateway(routing_text({STABLE: 50, CANARY: 50}))
    keys = [f"pinned-{i}" for i in range(60)]
    for version in (STABLE, CANARY):
        tally = send(gw, keys, version=version)
        assert not tally.failed
        assert dict(tally.by_version) == {version: len(keys)}
    # Not a pinned answer's version: an unknown version is the protocol's 404 naming the known.
    client = triton.InferenceServerClient(gw.proc.address)
    try:
        with pytest.raises(InferenceServerException, match="v2.3.1"):
            client.infer("churn", triton_inputs([EXAMPLE_CUSTOMER]), model_version="v9.9.9")
    finally:
        client.close()


def v2_body(row: dict[str, Any], *, binary: bool) -> tuple[bytes, dict[str, str]]:
    """One customer as our V2 request, in JSON or with binary tensors (as tritonclient sends)."""
    inputs = [
        Tensor(
            name,
            datatype,
            (1,),
            [str(row[name]).encode()]
            if datatype == "BYTES"
            else np.asarray([row[name]], dtype=_DTYPES[datatype]),
        )
        for name, datatype in INPUTS.items()
    ]
    body, length = encode_request(InferRequest(None, inputs, None, {}), binary=binary)
    headers = {"content-type": "application/json" if length is None else "application/octet-stream"}
    if length is not None:
        headers[INFERENCE_HEADER] = str(length)
    return body, headers


def metric_samples(client: httpx.Client) -> list[Any]:
    text = client.get("/metrics").text
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def test_bad_input_is_mlservers_400_to_the_client_and_no_failure_of_the_version(
    start_gateway: Callable[..., Gateway],
) -> None:
    """The exported runtime refuses what our replicas refuse; behind the gateway its 400 is the
    client's answer, from the version routing chose (no fallback to stable), and counts as no
    failure of it: no upstream error, no ejection after many in a row, no error for the judge."""
    gw = start_gateway(routing_text({STABLE: 0, CANARY: 100}))
    bad = [
        ("tenure", -1, "Input should be greater than or equal to 0"),
        ("contract_type", "three-year", "Value error, unknown value 'three-year'"),
        ("monthly_charges", float("nan"), "Input should be a finite number"),
    ]
    sent = 0
    with httpx.Client(base_url=gw.url, timeout=30) as client:
        before = request_counts(metric_samples(client))[CANARY]  # wait_until_served's request
        for _ in range(2):
            for field_name, value, says in bad:
                for binary in (False, True):
                    if not binary and value != value:  # NaN: JSON has none; binary carries it
                        continue
                    body, headers = v2_body({**EXAMPLE_CUSTOMER, field_name: value}, binary=binary)
                    answer = client.post("/v2/models/churn/infer", content=body, headers=headers)
                    sent += 1
                    assert answer.status_code == 400, answer.text
                    assert answer.headers["x-model-version"] == CANARY
                    assert answer.headers["x-route-reason"] == "weighted"
                    assert f"input '{field_name}': row 0: {says}" in answer.json()["error"]
        samples = metric_samples(client)
        for family in ("gateway_upstream_errors", "gateway_fallbacks", "gateway_replica_ejections"):
            assert not [s for s in samples if s.name == f"{family}_total"], family
        counts = request_counts(samples)[CANARY].minus(before)
        assert (counts.requests, counts.errors) == (sent, 0)
        # A valid customer right after: still MLServer's to serve, nothing ejected it.
        body, headers = v2_body(EXAMPLE_CUSTOMER, binary=True)
        answer = client.post("/v2/models/churn/infer", content=body, headers=headers)
        assert answer.status_code == 200
        assert answer.headers["x-model-version"] == CANARY


@dataclass
class Load:
    """tritonclient requests from a few threads, each with its own client, until stopped
    (bounded in count and time); every failure kept."""

    address: str
    threads: int = 3
    rate: float | None = None  # requests a second in all; None: as fast as answered
    max_requests: int = 20_000
    max_seconds: float = 90.0
    binary: bool = True
    tally: Tally = field(default_factory=Tally)
    sent: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        for n in range(self.threads):
            worker = threading.Thread(target=self._run, args=(n,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> Load:
        self._stop.set()
        for worker in self._workers:
            worker.join(30)
        return self

    def _run(self, n: int) -> None:
        client = triton.InferenceServerClient(self.address, network_timeout=20.0)
        rows = customers(64, seed=n)
        deadline = time.monotonic() + self.max_seconds
        gap = 0.0 if self.rate is None else self.threads / self.rate
        next_at = time.monotonic()
        i = 0
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                with self._lock:
                    if self.sent >= self.max_requests:
                        return
                    self.sent += 1
                i += 1
                inputs = triton_inputs([rows[i % len(rows)]], binary=self.binary)
                headers = {STICKY: f"load-{n}-{i}"}
                try:
                    result = client.infer("churn", inputs, headers=headers)
                    version = result.get_response()["model_version"]
                    with self._lock:
                        self.tally.by_version[version] += 1
                except InferenceServerException as exc:
                    with self._lock:
                        self.tally.failed[str(exc)[:120]] += 1
                if gap:
                    next_at += gap
                    self._stop.wait(max(0.0, next_at - time.monotonic()))
        finally:
            client.close()


def test_mlserver_killed_mid_run_costs_no_client_request(
    start_gateway: Callable[..., Gateway], canary_mlserver: MLServer
) -> None:
    gw = start_gateway(routing_text({STABLE: 50, CANARY: 50}))
    load = Load(gw.proc.address).start()
    try:
        time.sleep(1.5)
        before = dict(load.tally.by_version)
        canary_mlserver.kill()
        time.sleep(3.0)
    finally:
        load.stop()
        canary_mlserver.start().wait_ready()  # for the tests after this one
    tally = load.tally
    print(
        f"\nMLServer killed under load: {tally.answered} answered, {sum(tally.failed.values())} "
        f"failed; before the kill {before}, in all {dict(tally.by_version)}"
    )
    assert not tally.failed, tally.failed
    assert before.get(CANARY, 0) > 0  # it did serve before it died
    assert tally.by_version[STABLE] > before.get(STABLE, 0)  # and stable took over after
    assert tally.answered == load.sent


def wait_shadow_rows(url: str, rows: int, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    report: dict[str, Any] = {}
    while time.monotonic() < deadline:
        report = httpx.get(f"{url}/shadow", timeout=5).json()
        pairs = report["pairs"]
        if pairs and pairs[0]["rows"] + pairs[0]["failed"] >= rows:
            return report
        time.sleep(0.2)
    raise AssertionError(f"the shadow report did not reach {rows} rows: {report}")


def test_a_shadow_report_with_mlserver_as_the_shadow(
    start_gateway: Callable[..., Gateway], artifacts_dir: Path
) -> None:
    gw = start_gateway(routing_text({STABLE: 100, CANARY: 0}, shadow=100))
    rows = customers(200, seed=5)
    client = triton.InferenceServerClient(gw.proc.address)
    try:
        for i in range(0, len(rows), 20):
            result = client.infer("churn", triton_inputs(rows[i : i + 20], binary=i % 40 == 0))
            assert result.get_response()["model_version"] == STABLE
    finally:
        client.close()
    report = wait_shadow_rows(gw.url, len(rows))
    pair = report["pairs"][0]
    assert (pair["primary"], pair["shadow"]) == (STABLE, CANARY)
    assert pair["rows"] == len(rows) and pair["failed"] == 0
    # The comparison is of the two versions' scores: MLServer's column 1 of predict_proba
    # against our replica's probability, row for row.
    stable = np.round(artifact_probabilities(artifacts_dir, STABLE, rows), 4)
    canary = artifact_probabilities(artifacts_dir, CANARY, rows)
    delta = np.abs(canary - stable)
    assert pair["abs_delta"]["mean"] == pytest.approx(delta.mean(), abs=1e-9)
    assert pair["abs_delta"]["max"] == pytest.approx(delta.max(), abs=1e-9)
    print(
        f"\nshadow MLServer {CANARY} vs {STABLE} on {len(rows)} customers: tier agreement "
        f"{pair['tier_agreement']['percent']:.2f}%, |dp| mean {pair['abs_delta']['mean']:.4f}"
    )


PLAN = {
    "candidate": CANARY,
    "steps": [20, 50, 100],
    "interval": "2s",
    "check_every": "500ms",
    "min_requests": 100,
    "failure_limit": 2,
    # Drift (PSI) and the tier mix are judged as for any version: MLServer exports no
    # probability histogram, so its side is the gateway's count of what it served. Latency
    # against stable's is off: MLServer answers in tens of milliseconds on this shared two-core
    # machine where our replica answers in one (its p99 measured 361 ms against 47 ms), and the
    # judge rightly rolls it back on that; the ceiling p99_max_ms still holds.
    "thresholds": {"p99_ratio": None, "p99_max_ms": 1000},
}


def test_the_controller_promotes_mlserver(
    start_gateway: Callable[..., Gateway], log_dir: Path
) -> None:
    import sys

    gw = start_gateway(routing_text({STABLE: 100, CANARY: 0}, rollout=PLAN))
    load = Load(gw.proc.address, rate=60, binary=False).start()
    argv = [sys.executable, "-m", "gateway", "rollout", "start", "--file", str(gw.path)]
    controller = Proc("controller-mlserver", [*argv, "--gateway", gw.url], {}, 0).start(log_dir)
    try:
        assert controller.popen is not None
        code = controller.popen.wait(90)
    finally:
        load.stop()
        controller.stop()
    decisions = gw.path.with_name(gw.path.stem + ".rollout.jsonl")
    entries = [json.loads(line) for line in decisions.read_text().splitlines() if line]
    print(f"\nrollout of MLServer {CANARY}: {[(e['action'], e['weight']) for e in entries]}")
    assert code == 0, entries[-3:]
    assert not load.tally.failed, load.tally.failed
    config = parse_config(gw.path.read_text()).config
    assert config.stable == CANARY and config.weights() == {STABLE: 0, CANARY: 100}
    steps = [e["weight"] for e in entries if e["action"] in ("start", "advance")]
    assert steps == [20, 50, 100]
    assert load.tally.by_version[CANARY] > 0
    # Each step was passed on drift too, with MLServer's served probabilities counted.
    for entry in (e for e in entries if e["action"] in ("advance", "promote")):
        psi = next(c for c in entry["checks"] if c["name"] == "psi")
        assert psi["status"] == "PASS", psi
