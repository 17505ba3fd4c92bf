"""The KServe SDK's V2 REST client (kserve 0.21.0: ``kserve.InferenceRESTClient`` with protocol
"v2", ``InferRequest``/``InferInput`` from ``kserve.protocol.infer_type``) against a real gateway
over real replicas on 127.0.0.1: health and readiness, unpinned and pinned inference in JSON and
in binary tensors, the id echoed, and bad input surfaced as the SDK's error naming the tensor.

The SDK lives in `make kserve`'s venv (it pins pandas and python-dateutil below the project's),
so each test hands its calls to tests/integration/kserve_calls.py run by that venv's Python and
checks what the SDK returned or raised.

What the SDK's REST client has and has not: no model-metadata call; ``infer`` takes no version,
so a pin is the versioned path through its graph-endpoint form (the URL as given, the answer's
JSON as it came) or the gateway's pin header through its ``headers``; and the ``InferResponse``
it builds from a REST answer leaves ``model_version`` out (``InferResponse.from_bytes`` reads
only name, id, parameters and outputs), so the version that served is read from the answer's
``X-Model-Version`` (``response_headers``) and, on the versioned path, from the body itself.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from model_server.schemas import EXAMPLE_CUSTOMER
from model_server.v2_rows import INPUTS
from tests.integration.conftest import HOSTS, resolve_map
from tests.integration.procs import REPO_ROOT, Process, free_port, gateway, routing_yaml, wait_for
from tests.integration.test_v2_gateway import as_v2_only

KSERVE_PYTHON = REPO_ROOT / ".venv-kserve" / "bin" / "python"
CALLS = Path(__file__).with_name("kserve_calls.py")
VERSIONS = {"v2.3.1", "v2.4.0"}
# The example customer and two others: three rows whose probabilities differ.
ROWS = [
    EXAMPLE_CUSTOMER,
    {**EXAMPLE_CUSTOMER, "tenure": 60, "contract_type": "two-year", "num_support_tickets": 0},
    {**EXAMPLE_CUSTOMER, "tenure": 2, "senior_citizen": True},
]


def sdk(url: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each call made by the KServe SDK against ``url``: what it returned, or raised."""
    if not KSERVE_PYTHON.exists():
        pytest.fail(f"{KSERVE_PYTHON} is not installed: `make kserve` (part of make test) does it")
    done = subprocess.run(
        # -I: the SDK's venv alone, nothing of the project's on the path.
        [str(KSERVE_PYTHON), "-I", str(CALLS), url],
        input=json.dumps(calls),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results: list[dict[str, Any]] = json.loads(done.stdout)
    assert len(results) == len(calls)
    return results


def infer(rows: list[dict[str, Any]] = ROWS, **call: Any) -> dict[str, Any]:
    return {"call": "infer", "rows": rows, "datatypes": INPUTS, **call}


def predicted(url: str, version: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What /predict answers for each row, pinned to ``version``."""
    answers = []
    for row in rows:
        response = httpx.post(
            f"{url}/predict", json=row, headers={"X-Model-Version": version}, timeout=30
        )
        assert response.status_code == 200, response.text
        assert response.headers["X-Model-Version"] == version
        answers.append(response.json())
    return answers


def assert_same_as_predict(outputs: dict[str, list[Any]], answers: list[dict[str, Any]]) -> None:
    assert outputs["churn_probability"] == [a["churn_probability"] for a in answers]
    assert outputs["risk_tier"] == [a["risk_tier"] for a in answers]
    if "top_reasons" in outputs:
        reasons = [json.loads(text) for text in outputs["top_reasons"]]
        assert [[r["feature"] for r in row] for row in reasons] == [
            [r["feature"] for r in a["top_reasons"]] for a in answers
        ]


@pytest.fixture(scope="module")
def url(
    replicas: dict[str, Process], tmp_path_factory: pytest.TempPathFactory, log_dir: Path
) -> Iterator[str]:
    """One gateway over the three replicas at 50/50, every version pinnable."""
    path = tmp_path_factory.mktemp("kserve") / "routing.yaml"
    path.write_text(routing_yaml(HOSTS, weights={"v2.3.1": 50, "v2.4.0": 50}))
    proc = gateway(path, resolve_map(replicas)).start(log_dir)
    try:
        wait_for(f"http://{proc.address}/ready", timeout=30)
        yield f"http://{proc.address}"
    finally:
        proc.stop()


def test_health_and_model_readiness(url: str) -> None:
    live, ready, model, other = sdk(
        url,
        [
            {"call": "is_server_live"},
            {"call": "is_server_ready"},
            {"call": "is_model_ready", "model": "churn"},
            {"call": "is_model_ready", "model": "fraud"},
        ],
    )
    assert live == {"value": True}
    assert ready == {"value": True}
    assert model == {"value": True}
    assert other == {"value": False}  # the gateway's 404 for a model it does not serve


def test_a_gateway_with_no_replica_up_is_live_not_ready(tmp_path: Path, log_dir: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(routing_yaml(HOSTS, weights={"v2.3.1": 90, "v2.4.0": 10}))
    # Every replica's host resolves to a port nothing listens on.
    dead = {
        f"{host}:8000": f"127.0.0.1:{free_port()}" for hosts in HOSTS.values() for host in hosts
    }
    proc = gateway(path, dead).start(log_dir)
    try:
        base = f"http://{proc.address}"
        wait_for(f"{base}/v2/health/ready", timeout=30, status=503)
        live, ready, model, answer = sdk(
            base,
            [
                {"call": "is_server_live"},
                {"call": "is_server_ready"},
                {"call": "is_model_ready", "model": "churn"},
                infer(id="down-1"),
            ],
        )
    finally:
        proc.stop()
    assert live == {"value": True}
    # The SDK raises on a ready answer that is not 2xx, with the protocol error's text.
    assert ready["error"] == "HTTPStatusError" and ready["status"] == 503
    assert "not ready: no healthy replica" in ready["text"], ready
    assert model == {"value": False}
    assert answer["error"] == "HTTPStatusError" and answer["status"] == 503, answer
    # The gateway's reason, as the SDK's text: the version it tried, its replicas.
    assert re.search(r"version v2\.(3\.1|4\.0) .*replica", answer["text"]), answer


def test_unpinned_infer_in_json(url: str) -> None:
    answers = sdk(url, [infer(id=f"kserve-{i}") for i in range(8)])
    served: dict[str, list[dict[str, Any]]] = {}
    for i, answer in enumerate(answers):
        assert "error" not in answer, answer
        headers = answer["headers"]
        assert answer["id"] == f"kserve-{i}" == headers["x-request-id"]
        assert answer["model_name"] == "churn"
        assert headers["content-type"] == "application/json"
        assert headers["x-route-reason"] == "weighted"
        version = headers["x-model-version"]
        assert version in VERSIONS, headers
        assert answer["outputs"].keys() == {"churn_probability", "risk_tier", "top_reasons"}
        if version not in served:
            served[version] = predicted(url, version, ROWS)
        assert_same_as_predict(answer["outputs"], served[version])


def test_sticky_key_through_the_sdks_headers(url: str) -> None:
    keys = [f"customer-{i}" for i in range(6)]
    answers = sdk(url, [infer(headers={"X-Customer-Id": k}) for k in keys for _ in range(3)])
    for n, key in enumerate(keys):
        versions = {a["headers"]["x-model-version"] for a in answers[3 * n : 3 * n + 3]}
        by_predict = httpx.post(
            f"{url}/predict", json=EXAMPLE_CUSTOMER, headers={"X-Customer-Id": key}, timeout=30
        ).headers["X-Model-Version"]
        assert versions == {by_predict}, (key, versions, by_predict)
        assert {a["headers"]["x-route-reason"] for a in answers[3 * n : 3 * n + 3]} == {"sticky"}


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_pinned_by_the_versioned_path_and_by_the_pin_header(url: str, version: str) -> None:
    path = f"/v2/models/churn/versions/{version}/infer"
    by_path, by_header, binary_by_header = sdk(
        url,
        [
            infer(id=f"path-{version}", path=path),
            infer(id=f"header-{version}", headers={"X-Model-Version": version}),
            infer(binary=True, binary_outputs=True, headers={"X-Model-Version": version},
                  outputs=["churn_probability", "risk_tier"]),
        ],
    )  # fmt: skip
    answers = predicted(url, version, ROWS)
    # The versioned path: the body as the gateway wrote it, model_version included.
    body = by_path["body"]
    assert (body["model_name"], body["model_version"], body["id"]) == (
        "churn", version, f"path-{version}"
    )  # fmt: skip
    outputs = {o["name"]: o["data"] for o in body["outputs"]}
    assert_same_as_predict(outputs, answers)
    for answer in (by_header, binary_by_header):
        assert answer["headers"]["x-model-version"] == version
        assert answer["headers"]["x-route-reason"] == "pinned"
        assert_same_as_predict(answer["outputs"], answers)
    assert by_header["id"] == f"header-{version}"


def test_binary_tensors_both_ways(url: str) -> None:
    json_answer, binary_in, binary_both = sdk(
        url,
        [
            infer(id="json", headers={"X-Model-Version": "v2.3.1"}),
            infer(id="bin-in", binary=True, headers={"X-Model-Version": "v2.3.1"}),
            # No id given: the SDK makes one (a uuid4), which the gateway takes as the request's.
            infer(binary=True, binary_outputs=True, headers={"X-Model-Version": "v2.3.1"},
                  outputs=["churn_probability", "risk_tier", "top_reasons"]),
        ],
    )  # fmt: skip
    assert "inference-header-content-length" not in binary_in["headers"]
    assert binary_in["headers"]["content-type"] == "application/json"
    assert binary_in["outputs"] == json_answer["outputs"]
    assert binary_in["id"] == "bin-in"
    # Binary outputs asked for: the answer's JSON header, then the tensors' bytes.
    headers = binary_both["headers"]
    assert headers["content-type"] == "application/octet-stream"
    assert 0 < int(headers["inference-header-content-length"]) < int(headers["content-length"])
    assert binary_both["outputs"] == json_answer["outputs"]
    assert str(uuid.UUID(binary_both["id"])) == binary_both["id"] == headers["x-request-id"]


def test_bad_input_is_the_sdks_error_naming_the_tensor(url: str) -> None:
    missing = {k: v for k, v in INPUTS.items() if k != "senior_citizen"}
    calls = [
        infer(replace={"tenure": {"data": [14, 15], "shape": [1]}}, rows=[EXAMPLE_CUSTOMER]),
        infer(datatypes={**INPUTS, "tenure": "FP64"}),
        infer(datatypes=missing),
        infer(rows=[{**EXAMPLE_CUSTOMER, "monthly_charges": -5.0}], binary=True),
        infer(rows=[{**EXAMPLE_CUSTOMER, "contract_type": "lifetime"}], binary=True),
        infer(rows=[EXAMPLE_CUSTOMER] * 1001, binary=True),
        infer(model="fraud"),
        infer(path="/v2/models/churn/versions/v9.9.9/infer"),
        # Past the gateway's body limit (1 MiB): its own 413, in the protocol's form.
        infer(rows=[{**EXAMPLE_CUSTOMER, "contract_type": "x" * 1500}] * 800, binary=True),
    ]
    shape, datatype, absent, bound, category, rows, model, version, large = sdk(url, calls)
    for error, tensor in [
        (rows, "tenure"),
        (shape, "tenure"),
        (datatype, "tenure"),
        (absent, "senior_citizen"),
        (bound, "monthly_charges"),
        (category, "contract_type"),
    ]:
        assert error["error"] == "HTTPStatusError" and error["status"] == 400, error
        # The protocol's {"error": ...} is the exception's text, the tensor named in it.
        assert error["text"].startswith(f"input '{tensor}'"), error
        assert "400 Bad Request" in error["text"]
    assert "shape [1] holds 1 elements, data has 2" in shape["text"]
    assert "more than the 1000 elements a request may carry" in rows["text"], rows
    assert large["status"] == 413, large
    assert large["text"].startswith("request body exceeds 1048576 bytes"), large
    assert model["status"] == 404 and "this gateway serves 'churn'" in model["text"], model
    assert version["status"] == 404, version
    assert "known versions: v2.3.1, v2.4.0" in version["text"], version


def test_a_v2_only_version_behind_the_gateway(
    replicas: dict[str, Process], tmp_path: Path, log_dir: Path
) -> None:
    """v2.4.0 declared a JSON-only V2 server (``protocol: v2``, ``binary_tensors: false``): the
    SDK's binary request is sent on as JSON and the answer turned back into binary for it."""
    path = tmp_path / "routing.yaml"
    path.write_text(as_v2_only(routing_yaml(HOSTS, weights={"v2.3.1": 50, "v2.4.0": 50})))
    proc = gateway(path, resolve_map(replicas)).start(log_dir)
    try:
        base = f"http://{proc.address}"
        wait_for(f"{base}/v2/models/churn/versions/v2.4.0/ready", timeout=30)
        binary, by_path = sdk(
            base,
            [
                infer(id="only-bin", binary=True, binary_outputs=True,
                      headers={"X-Model-Version": "v2.4.0"},
                      outputs=["churn_probability", "risk_tier"]),
                infer(id="only-path", path="/v2/models/churn/versions/v2.4.0/infer"),
            ],
        )  # fmt: skip
    finally:
        proc.stop()
    direct = [
        httpx.post(f"http://{replicas['model-v2-4-0-a'].address}/predict", json=row).json()
        for row in ROWS
    ]
    assert binary["id"] == "only-bin"
    assert binary["headers"]["x-model-version"] == "v2.4.0"
    assert binary["headers"]["content-type"] == "application/octet-stream"
    assert int(binary["headers"]["inference-header-content-length"]) > 0
    assert_same_as_predict(binary["outputs"], direct)
    body = by_path["body"]
    assert (body["model_version"], body["id"]) == ("v2.4.0", "only-path")
    outputs = {o["name"]: o["data"] for o in body["outputs"]}
    assert_same_as_predict(outputs, direct)
    assert body["parameters"]["reasons_available"] is False  # such a server gives no reasons
