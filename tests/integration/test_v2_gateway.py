"""The Open Inference Protocol through a real gateway to real replicas on 127.0.0.1: shares,
sticky keys, the versioned path as a pin, tritonclient.http in its default binary mode, a
version behind the gateway as a V2-only server (binary translated to JSON), fallback when the
chosen version's replica dies mid-run, the shadow comparison and the prediction log."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from model_server.schemas import EXAMPLE_CUSTOMER
from model_server.v2_rows import INPUTS
from outcomes.store.sqlite import SqliteStore
from tests.integration.conftest import HOSTS, resolve_map
from tests.integration.procs import Process, gateway, replica, routing_yaml, wait_for
from tests.integration.test_gateway_routing import share_tolerance
from tests.model_server.v2_requests import v2_body

INFER = "/v2/models/churn/infer"
NUMPY = {"INT64": np.int64, "FP64": np.float64, "BOOL": np.bool_, "BYTES": np.object_}
# v2.4.0 as a V2-only version (its replicas are ours, reached on /v2 only, binary made JSON).
V2_ONLY = """\
    protocol: v2
    binary_tensors: false
"""


@pytest.fixture
def start(
    replicas: dict[str, Process], tmp_path: Path, log_dir: Path
) -> Iterator[Callable[..., Process]]:
    """A gateway over ``replicas`` (and ``extra`` ones) with the routing text given."""
    running: list[Process] = []

    def run(routing: str, extra: dict[str, Process] | None = None, **settings: object) -> Process:
        path = tmp_path / f"routing-{len(running)}.yaml"
        path.write_text(routing)
        resolve = resolve_map({**replicas, **(extra or {})})
        proc = gateway(path, resolve, **settings).start(log_dir)
        running.append(proc)
        wait_for(f"http://{proc.address}/ready", timeout=30)
        return proc

    yield run
    for proc in running:
        proc.stop()


def as_v2_only(routing: str) -> str:
    """``routing`` with v2.4.0 declared ``protocol: v2``."""
    marker = "    replicas: [http://model-v2-4-0-a:8000]\n"
    assert marker in routing
    return routing.replace(marker, marker + V2_ONLY)


def inputs_of(rows: list[dict[str, Any]], binary: bool = True) -> list[triton.InferInput]:
    made = []
    for name, datatype in INPUTS.items():
        values = [row[name] for row in rows]
        array = np.array(
            [v.encode() for v in values] if datatype == "BYTES" else values,
            dtype=NUMPY[datatype],
        )
        tensor = triton.InferInput(name, [len(rows)], datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        made.append(tensor)
    return made


async def drive_v2(
    url: str,
    count: int,
    *,
    concurrency: int = 8,
    max_seconds: float = 60.0,
    by_version: Counter[str] | None = None,
    **kwargs: Any,
) -> tuple[Counter[str], Counter[str], list[str]]:
    """``count`` V2 JSON requests (bounded in time too), each with its own id: the versions
    (counted into ``by_version`` as they answer, when given) and route reasons that answered,
    and every problem seen."""
    by_version = by_version if by_version is not None else Counter()
    by_reason: Counter[str] = Counter()
    problems: list[str] = []
    deadline = time.monotonic() + max_seconds
    sent = 0
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:

        async def worker() -> None:
            nonlocal sent
            while sent < count and time.monotonic() < deadline:
                sent += 1
                request_id = f"drive-{sent}"
                body, headers = v2_body([EXAMPLE_CUSTOMER], request_id=request_id, **kwargs)
                try:
                    response = await client.post(INFER, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    problems.append(type(exc).__name__)
                    continue
                if response.status_code != 200:
                    problems.append(f"{response.status_code} {response.text[:120]}")
                    continue
                answer = response.json()
                version = response.headers["X-Model-Version"]
                if answer["model_version"] != version or answer["id"] != request_id:
                    problems.append(f"tags: {answer['model_version']} {answer['id']} {version}")
                if response.headers["X-Request-Id"] != request_id:
                    problems.append(f"request id {response.headers['X-Request-Id']}")
                by_version[version] += 1
                by_reason[response.headers["X-Route-Reason"]] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return by_version, by_reason, problems


def test_v2_shares_follow_the_weights(start: Callable[..., Process]) -> None:
    proc = start(routing_yaml(HOSTS, weights={"v2.3.1": 90, "v2.4.0": 10}))
    by_version, by_reason, problems = asyncio.run(drive_v2(f"http://{proc.address}", 1000))
    print(f"\nV2 split of 1000 at 90/10: {dict(by_version)}")
    assert problems == []
    assert sum(by_version.values()) == 1000
    assert abs(by_version["v2.4.0"] / 1000 - 0.10) <= share_tolerance(0.10, 1000)
    assert by_reason.keys() == {"weighted"}
    # Counted as /predict's are: what /stats, the status page and the controller read.
    metrics = httpx.get(f"http://{proc.address}/metrics").text
    for version, count in by_version.items():
        line = f'gateway_requests_total{{reason="weighted",status="200",version="{version}"}}'
        assert f"{line} {float(count)}" in metrics, (line, metrics[:2000])


def test_sticky_keys_keep_their_version_through_either_door(start: Callable[..., Process]) -> None:
    proc = start(routing_yaml(HOSTS, weights={"v2.3.1": 50, "v2.4.0": 50}))
    body, headers = v2_body([EXAMPLE_CUSTOMER])
    seen: Counter[str] = Counter()
    with httpx.Client(base_url=f"http://{proc.address}", timeout=30) as client:
        for i in range(30):
            key = {"X-Customer-Id": f"customer-{i}"}
            versions = {
                client.post(INFER, content=body, headers={**headers, **key}).headers[
                    "X-Model-Version"
                ]
                for _ in range(3)
            }
            versions.add(
                client.post("/predict", json=EXAMPLE_CUSTOMER, headers=key).headers[
                    "X-Model-Version"
                ]
            )
            assert len(versions) == 1, (key, versions)
            seen[versions.pop()] += 1
    assert seen.keys() == {"v2.3.1", "v2.4.0"}


def test_tritonclient_default_binary_and_the_versioned_path(start: Callable[..., Process]) -> None:
    proc = start(routing_yaml(HOSTS, weights={"v2.3.1": 50, "v2.4.0": 50}))
    url = f"http://{proc.address}"
    client = triton.InferenceServerClient(url=proc.address, network_timeout=30.0)
    try:
        for version in ("v2.4.0", "v2.3.1"):
            single = httpx.post(
                f"{url}/predict", json=EXAMPLE_CUSTOMER, headers={"X-Model-Version": version}
            ).json()
            for i in range(5):
                result = client.infer(
                    "churn",
                    inputs_of([EXAMPLE_CUSTOMER]),
                    model_version=version,
                    request_id=f"t{i}",
                )
                answer = result.get_response()
                assert answer["model_name"] == "churn"
                assert answer["model_version"] == version
                assert answer["id"] == f"t{i}"
                probability = result.as_numpy("churn_probability")
                assert probability is not None
                assert probability.tolist() == [single["churn_probability"]]
        unpinned = client.infer("churn", inputs_of([EXAMPLE_CUSTOMER] * 3))
        assert unpinned.get_response()["model_version"] in {"v2.3.1", "v2.4.0"}
        assert unpinned.as_numpy("top_reasons") is not None
    finally:
        client.close()


def test_a_v2_only_version_takes_binary_and_predict_translated(
    start: Callable[..., Process], replicas: dict[str, Process]
) -> None:
    proc = start(as_v2_only(routing_yaml(HOSTS, weights={"v2.3.1": 50, "v2.4.0": 50})))
    url = f"http://{proc.address}"
    direct = httpx.post(
        f"http://{replicas['model-v2-4-0-a'].address}/predict", json=EXAMPLE_CUSTOMER
    ).json()
    client = triton.InferenceServerClient(url=proc.address, network_timeout=30.0)
    try:
        result = client.infer(
            "churn", inputs_of([EXAMPLE_CUSTOMER] * 2), model_version="v2.4.0", request_id="b-1"
        )
        answer = result.get_response()
        assert (answer["model_version"], answer["id"]) == ("v2.4.0", "b-1")
        probability = result.as_numpy("churn_probability")
        tiers = result.as_numpy("risk_tier")
        assert probability is not None and tiers is not None
        assert probability.tolist() == [direct["churn_probability"]] * 2
        assert [t.decode() for t in tiers.tolist()] == [direct["risk_tier"]] * 2
    finally:
        client.close()
    translated = httpx.post(
        f"{url}/predict", json=EXAMPLE_CUSTOMER, headers={"X-Model-Version": "v2.4.0"}
    )
    assert translated.status_code == 200
    body = translated.json()
    assert body["churn_probability"] == direct["churn_probability"]
    assert (body["top_reasons"], body["reasons_available"]) == ([], False)
    assert translated.headers["X-Model-Version"] == "v2.4.0"


def test_a_canary_killed_mid_run_costs_no_v2_request(
    start: Callable[..., Process], artifacts_dir: Path, log_dir: Path
) -> None:
    canary = replica("model-v2-4-0-k", "v2.4.0", artifacts_dir).start(log_dir)
    try:
        wait_for(f"http://{canary.address}/ready")
        hosts = {"v2.3.1": HOSTS["v2.3.1"], "v2.4.0": ["model-v2-4-0-k"]}
        proc = start(
            routing_yaml(hosts, weights={"v2.3.1": 50, "v2.4.0": 50}),
            extra={"model-v2-4-0-k": canary},
        )

        async def run() -> tuple[Counter[str], Counter[str], list[str]]:
            seen: Counter[str] = Counter()
            load = asyncio.create_task(
                drive_v2(f"http://{proc.address}", 1500, concurrency=6, by_version=seen)
            )
            deadline = time.monotonic() + 30
            while sum(seen.values()) < 300 and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            canary.popen.kill()  # type: ignore[union-attr]  # mid-run: 1,200 still to send
            return await load

        by_version, by_reason, problems = asyncio.run(run())
        print(f"\nV2 with the canary killed: {dict(by_version)} {dict(by_reason)}")
        assert problems == []
        assert sum(by_version.values()) == 1500
        assert by_version["v2.4.0"] > 0 and by_reason["fallback"] > 0
    finally:
        canary.stop()


def test_shadow_and_the_prediction_log_see_v2_requests(
    start: Callable[..., Process], tmp_path: Path
) -> None:
    routing = routing_yaml(
        HOSTS, weights={"v2.3.1": 100, "v2.4.0": 0}, shadow={"version": "v2.4.0", "percent": 100}
    )
    proc = start(
        routing,
        prediction_log="true",
        data_dir=tmp_path / "data",
        prediction_log_flush_s=0.2,
        outcomes_token="v2-token",
    )
    url = f"http://{proc.address}"
    answers: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(6):
            binary = i % 2 == 1
            body, headers = v2_body(
                [EXAMPLE_CUSTOMER, {**EXAMPLE_CUSTOMER, "tenure": 3 + i}],
                request_id=f"log-{i}",
                binary=binary,
            )
            response = client.post(INFER, content=body, headers=headers)
            assert response.status_code == 200
            assert response.headers["X-Request-Id"] == f"log-{i}"
            if not binary:
                answers[f"log-{i}"] = response.json()
        deadline = time.monotonic() + 10
        while True:
            pairs = client.get("/shadow").json()["pairs"]
            if pairs and pairs[0]["compared"] == 6:
                break
            assert time.monotonic() < deadline, pairs
            time.sleep(0.05)
    assert pairs[0]["rows"] == 12 and pairs[0]["failed"] == 0
    assert pairs[0]["top_reason"]["explained_rows"] == 12  # both sides ours: reasons compared
    store = SqliteStore(tmp_path / "data" / "predictions.sqlite3")
    try:
        deadline = time.monotonic() + 10
        while store.counts()["predictions"] < 24:
            assert time.monotonic() < deadline, store.counts()
            time.sleep(0.05)
        store.materialize()
        with store._transaction() as cursor:  # type: ignore[attr-defined]
            cursor.execute(
                "SELECT request_id, row_index, version, assignment, churn_probability "
                "FROM predictions ORDER BY id"
            )
            rows = list(cursor.fetchall())
    finally:
        store.close()
    assert {r[0] for r in rows} == {f"log-{i}" for i in range(6)}
    assert Counter(r[3] for r in rows) == {"weighted": 12, "shadow": 12}
    for request_id, row, version, assignment, probability in rows:
        if assignment == "weighted" and request_id in answers:
            outputs = {o["name"]: o["data"] for o in answers[request_id]["outputs"]}
            assert probability == outputs["churn_probability"][row]
            assert version == "v2.3.1"
    # An outcome posted against the request's id labels its row, served and shadow alike.
    posted = httpx.post(
        f"{url}/outcomes",
        json=[{"request_id": "log-1", "row": 1, "churned": True, "observed_at": time.time()}],
        headers={"Authorization": "Bearer v2-token"},
    )
    assert posted.status_code == 200, posted.text
    assert posted.json()["labelled"] == 2
