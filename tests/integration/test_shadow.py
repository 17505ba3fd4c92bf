"""Shadow traffic with real replicas of both versions: the report against ground truth computed
offline from the two artifacts, clients untouched, and mirrors that fail or hang."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from model_server.artifact import load_artifact
from model_server.features import CATEGORICAL_MAPS, FEATURE_ORDER
from model_server.predictor import Predictor
from model_server.schemas import ChurnPredictionRequest
from model_server.train import generate_dataset
from tests.integration.conftest import HOSTS, resolve_map
from tests.integration.hung_replica import HungReplica
from tests.integration.procs import (
    REPO_ROOT,
    Process,
    drive,
    free_port,
    gateway,
    routing_yaml,
    wait_for,
)
from tests.integration.prometheus import PROMETHEUS, Prometheus

ALL_TO_STABLE = {"v2.3.1": 100, "v2.4.0": 0}
SHADOW_ALL = {"version": "v2.4.0", "percent": 100}
BOUNDS = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
CUSTOMERS = 2000
BATCH = 150  # 10 batches of 150 plus 500 single predictions


def seeded_customers(count: int, seed: int = 99) -> list[dict[str, Any]]:
    """Customers from the training data generator (another seed), as the API takes them."""
    features, _ = generate_dataset(count, seed)
    decode = {
        name: {code: label for label, code in m.items()} for name, m in CATEGORICAL_MAPS.items()
    }
    customers = []
    for row in features:
        values = dict(zip(FEATURE_ORDER, row.tolist(), strict=True))
        customer: dict[str, Any] = {}
        for name, value in values.items():
            if name in decode:
                customer[name] = decode[name][int(value)]
            elif name in ("tenure", "num_support_tickets", "streaming_services"):
                customer[name] = int(value)
            elif name in ("paperless_billing", "senior_citizen"):
                customer[name] = bool(value)
            else:
                customer[name] = float(value)
        customers.append(customer)
    return customers


def requests_of(customers: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    batched, single = customers[: CUSTOMERS - 500], customers[CUSTOMERS - 500 :]
    out: list[tuple[str, Any]] = [
        ("/predict/batch", {"customers": batched[i : i + BATCH]})
        for i in range(0, len(batched), BATCH)
    ]
    out += [("/predict", c) for c in single]
    return out


def offline(artifacts: Path, version: str, requests: list[tuple[str, Any]]) -> list[dict]:
    """Every row each version gives, scored in process, in the same batches."""
    predictor = Predictor(
        load_artifact(artifacts / version / "model.joblib", version).model, version
    )
    rows: list[dict] = []
    for path, payload in requests:
        customers = payload["customers"] if path == "/predict/batch" else [payload]
        rows += predictor.predict([ChurnPredictionRequest(**c) for c in customers])
    return rows


def send(url: str, requests: list[tuple[str, Any]], headers: dict[str, str] | None = None):
    answers = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for path, payload in requests:
            answers.append(client.post(path, json=payload, headers=headers))
    return answers


def wait_report(url: str, rows: int, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    report: dict[str, Any] = {}
    while time.monotonic() < deadline:
        report = httpx.get(f"{url}/shadow", timeout=5).json()
        pairs = report["pairs"]
        if pairs and pairs[0]["rows"] + pairs[0]["failed"] >= rows:
            return report
        time.sleep(0.2)
    raise AssertionError(f"the report did not reach {rows} rows: {report}")


@pytest.fixture
def shadow_gateway(replicas, tmp_path: Path, log_dir: Path) -> Iterator[Any]:
    started: list[Process] = []

    def start(shadow=SHADOW_ALL, resolve=None, **settings: object) -> Process:
        path = tmp_path / f"routing-{len(started)}.yaml"
        path.write_text(routing_yaml(HOSTS, weights=ALL_TO_STABLE, shadow=shadow))
        proc = gateway(path, resolve or resolve_map(replicas), **settings).start(log_dir)
        started.append(proc)
        wait_for(f"http://{proc.address}/ready", timeout=30)
        return proc

    yield start
    for proc in started:
        proc.stop()


def test_report_equals_offline_ground_truth(shadow_gateway, artifacts_dir: Path) -> None:
    requests = requests_of(seeded_customers(CUSTOMERS))
    proc = shadow_gateway()
    url = f"http://{proc.address}"
    answers = send(url, requests)
    assert all(a.status_code == 200 for a in answers)
    assert {a.headers["x-model-version"] for a in answers} == {"v2.3.1"}
    report = wait_report(url, CUSTOMERS)

    primary = offline(artifacts_dir, "v2.3.1", requests)
    shadow = offline(artifacts_dir, "v2.4.0", requests)
    served = [r for a in answers for r in a.json().get("predictions", [a.json()])]
    assert [r["churn_probability"] for r in served] == [r["churn_probability"] for r in primary]

    pair = report["pairs"][0]
    assert (pair["primary"], pair["shadow"]) == ("v2.3.1", "v2.4.0")
    assert pair["rows"] == CUSTOMERS and pair["compared"] == len(requests)
    assert pair["failed"] == 0 and pair["dropped"] == 0
    tiers = ("low", "medium", "high")
    for client_tier in tiers:
        for shadow_tier in tiers:
            expected = sum(
                1
                for p, s in zip(primary, shadow, strict=True)
                if p["risk_tier"] == client_tier and s["risk_tier"] == shadow_tier
            )
            assert pair["tier_agreement"]["confusion"][client_tier][shadow_tier] == expected
    p = np.array([r["churn_probability"] for r in primary])
    s = np.array([r["churn_probability"] for r in shadow])
    delta = np.abs(s - p)
    assert pair["abs_delta"]["mean"] == pytest.approx(delta.mean(), abs=1e-9)
    assert pair["abs_delta"]["p50"] == pytest.approx(np.percentile(delta, 50), abs=1e-9)
    assert pair["abs_delta"]["p95"] == pytest.approx(np.percentile(delta, 95), abs=1e-9)
    assert pair["abs_delta"]["max"] == pytest.approx(delta.max(), abs=1e-9)

    def shares(values: np.ndarray) -> np.ndarray:
        bins = np.minimum(np.searchsorted(BOUNDS, values, side="left"), len(BOUNDS) - 1)
        return np.maximum(np.bincount(bins, minlength=len(BOUNDS)) / len(values), 1e-4)

    e, a = shares(p), shares(s)
    assert pair["psi"]["value"] == pytest.approx(float(np.sum((a - e) * np.log(a / e))), abs=1e-9)
    same_top = sum(
        x["top_reasons"][0]["feature"] == y["top_reasons"][0]["feature"]
        for x, y in zip(primary, shadow, strict=True)
    )
    assert pair["top_reason"]["same_top_percent"] == pytest.approx(100 * same_top / CUSTOMERS)
    largest = pair["largest_disagreements"]
    assert largest[0]["abs_delta"] == pytest.approx(delta.max(), abs=1e-9)
    ids = {a.headers["x-request-id"] for a in answers}
    assert all(d["request_id"] in ids for d in largest)
    routing = httpx.get(f"{url}/routing").json()
    assert routing["shadow"]["active"] is True
    print(
        f"\nshadow v2.4.0 vs v2.3.1 on {CUSTOMERS} customers: tier agreement "
        f"{pair['tier_agreement']['percent']:.2f}%, PSI {pair['psi']['value']:.4f} "
        f"({pair['psi']['reading']}), |dp| mean {pair['abs_delta']['mean']:.4f} "
        f"p95 {pair['abs_delta']['p95']:.4f} max {pair['abs_delta']['max']:.4f}"
    )


STRIPPED = {"date", "x-request-id", "x-response-time-ms", "x-routing-revision"}


def comparable(answer: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    stripped = set(STRIPPED)
    body = answer.content
    if b'"processing_time_ms"' in body:  # the model's own timing, different on every call
        document = json.loads(body)
        document.pop("processing_time_ms")
        body = json.dumps(document).encode()
        stripped.add("content-length")  # follows the timing's digits
    headers = sorted((k, v) for k, v in answer.headers.items() if k not in stripped)
    return answer.status_code, headers, body


def test_clients_get_the_same_bytes_with_shadow_on(shadow_gateway) -> None:
    requests = requests_of(seeded_customers(300, seed=5))[:8]
    requests.append(("/predict", {"tenure": -1}))  # a 422 passes through either way
    on = shadow_gateway()
    off = shadow_gateway(shadow=None)
    with_shadow = send(f"http://{on.address}", requests, {"X-Customer-Id": "c-1"})
    without = send(f"http://{off.address}", requests, {"X-Customer-Id": "c-1"})
    assert [comparable(a) for a in with_shadow] == [comparable(a) for a in without]
    assert with_shadow[-1].status_code == 422


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


ROUNDS = 6


def test_hung_shadow_replica_drops_mirrors_at_the_cap(shadow_gateway, replicas) -> None:
    with HungReplica("v2.4.0") as hung:
        resolve = {**resolve_map(replicas), "model-v2-4-0-a:8000": hung.address}
        on = shadow_gateway(resolve=resolve, shadow_max_inflight=8, shadow_timeout_s=5)
        off = shadow_gateway(shadow=None)
        url_on, url_off = f"http://{on.address}", f"http://{off.address}"
        asyncio.run(drive(url_on, count=200, concurrency=4))  # warm up, fill the cap
        before = rss_kib(on.popen.pid)  # type: ignore[union-attr]
        p99 = {"on": [], "off": []}
        for _ in range(ROUNDS):  # interleaved rounds: the machine's noise hits both alike
            for name, url in (("off", url_off), ("on", url_on)):
                timings = []
                with httpx.Client(base_url=url, timeout=10) as client:
                    for _ in range(200):
                        started = time.perf_counter()
                        answer = client.post("/predict", json=seeded_customers(1)[0])
                        timings.append(time.perf_counter() - started)
                        assert answer.status_code == 200
                p99[name].append(float(np.percentile(timings, 99)))
        after = rss_kib(on.popen.pid)  # type: ignore[union-attr]
        report = httpx.get(f"{url_on}/shadow").json()["pairs"][0]
        offered = 200 + ROUNDS * 200  # the shadow-on gateway's requests
        # Copies still waiting on the hung replica have no outcome yet: at most the cap's 8.
        assert offered - 8 <= report["mirrored"] + report["dropped"] <= offered
        # Never more than the cap in flight: a copy is only sent once an earlier one timed out.
        assert report["mirrored"] - report["failed_by_cause"]["timeout"] <= 8
        assert report["dropped"] > offered / 2  # most of them: the cap was full all along
        assert hung.predict_calls <= report["mirrored"] + 8
        # Each side's best round: a round the machine's other work spoiled says nothing.
        on_p99, off_p99 = min(p99["on"]), min(p99["off"])
        print(
            f"\nclient p99 with a hung shadow {on_p99 * 1e3:.2f} ms, "
            f"shadow off {off_p99 * 1e3:.2f} ms; gateway RSS {before} -> {after} KiB"
        )
        assert on_p99 <= max(off_p99 * 1.10, off_p99 + 0.002)
        assert after - before < 20 * 1024  # flat: no growth with dropped mirrors


def test_shadow_replica_killed_under_load_costs_clients_nothing(
    shadow_gateway, replicas, log_dir: Path
) -> None:
    proc = shadow_gateway(shadow_timeout_s=1)
    url = f"http://{proc.address}"
    victim = replicas["model-v2-4-0-a"]

    async def load_and_kill() -> Any:
        load = asyncio.create_task(drive(url, count=1500, concurrency=8, max_seconds=60))
        # Mid-load, shown by the report below: pairs compared (before the kill) and copies
        # failed or dropped (after it).
        await asyncio.sleep(0.5)
        victim.signal(signal.SIGKILL)
        return await load

    try:
        result = asyncio.run(load_and_kill())
        assert result.failed == 0, result.errors
        assert set(result.by_version) == {"v2.3.1"}
        report = httpx.get(f"{url}/shadow").json()["pairs"][0]
        assert report["compared"] > 0
        assert report["failed"] + report["dropped"] > 0
        assert (
            report["failed_by_cause"]["connect_error"]
            + report["failed_by_cause"]["no_replica"]
            + report["failed_by_cause"]["protocol_error"]
            > 0
        )
    finally:
        victim.start(log_dir)
        wait_for(f"http://{victim.address}/ready", timeout=120)


def test_the_report_sums_over_workers(replicas, tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(routing_yaml(HOSTS, weights=ALL_TO_STABLE, shadow=SHADOW_ALL))
    port = free_port()
    argv = [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "2"]  # fmt: skip
    env = {**os.environ, "GATEWAY_ROUTING_FILE": str(path),
           "GATEWAY_RESOLVE": json.dumps(resolve_map(replicas))}  # fmt: skip
    server = subprocess.Popen(argv, env=env, cwd=REPO_ROOT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(f"{url}/ready", timeout=60)
        customers = seeded_customers(400, seed=3)
        # New connections each time, so both workers answer some of them.
        for customer in customers:
            assert httpx.post(f"{url}/predict", json=customer, timeout=10).status_code == 200
        report = wait_report(url, len(customers), timeout=30)
        for _ in range(10):  # whichever worker answers, the same sum
            again = httpx.get(f"{url}/shadow").json()["pairs"][0]
            assert again["rows"] == len(customers)
        assert report["pairs"][0]["compared"] == len(customers)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)


def readme_promql() -> list[str]:
    """The PromQL blocks of the README's "Shadow metrics" section, in order."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text[text.index("### Shadow metrics") :]
    section = section[: section.index("\n## ")]
    return re.findall(r"```promql\n(.*?)```", section, flags=re.S)


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (make test installs it)")
def test_readme_promql_gives_the_reports_numbers(shadow_gateway, tmp_path: Path) -> None:
    proc = shadow_gateway()
    url = f"http://{proc.address}"
    requests = requests_of(seeded_customers(CUSTOMERS, seed=21))[:12]
    send(url, requests)
    rows = sum(len(p["customers"]) if path.endswith("batch") else 1 for path, p in requests)
    pair = wait_report(url, rows)["pairs"][0]
    agreement, psi_expr, share = readme_promql()
    # The README asks over the last hour; this Prometheus has seen every count since the start,
    # so the raw counters stand in for increase(...[1h]) (which extrapolates).
    instant = functools.partial(re.sub, r"increase\((.*?)\[1h\]\)", r"\1")
    shadow_share = instant(share)
    client_share = shadow_share.replace('side="shadow"', 'side="primary"')
    psi_query = instant(psi_expr).replace("shadow_share", f"({shadow_share})")
    psi_query = psi_query.replace("client_share", f"({client_share})")
    with Prometheus([proc.address], tmp_path) as prom:
        prom.wait_until("sum(gateway_shadow_rows_total)", float(rows))
        assert prom.scalar(instant(agreement)) == pytest.approx(
            pair["tier_agreement"]["percent"] / 100, abs=1e-9
        )
        assert prom.scalar(psi_query) == pytest.approx(pair["psi"]["value"], abs=1e-9)
