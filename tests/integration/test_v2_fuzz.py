"""schemathesis against the Open Inference Protocol part of a real gateway's OpenAPI document.

A real gateway process (the server protocol production runs) over real model replicas on
127.0.0.1: every V2 operation the document lists (health, metadata, readiness, infer, JSON and
binary bodies, valid and not) is sent generated requests, and none may answer a 5xx. The
replicas speak the model API and the V2 protocol, so every 5xx the gateway could give for want
of a replica (503) is ruled out first: any 5xx seen is a bug.

Bounded: a fixed number of examples per operation, each request with a timeout.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from protocols.v2.translate import MODEL_API_INPUTS
from tests.integration.conftest import HOSTS, resolve_map
from tests.integration.procs import Process, gateway, replica, routing_yaml, wait_for

EXAMPLES = 40  # per operation: 9 operations, a few hundred requests in all


@pytest.fixture(scope="module")
def v2_gateway(artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("v2-fuzz")
    started = {
        host: replica(host, version, artifacts_dir).start(tmp)
        for version, hosts in HOSTS.items()
        for host in hosts
    }
    gw: Process | None = None
    try:
        for proc in started.values():
            wait_for(f"http://{proc.address}/ready")
        routing = tmp / "routing.yaml"
        routing.write_text(routing_yaml(HOSTS, weights={"v2.3.1": 90, "v2.4.0": 10}))
        gw = gateway(routing, resolve_map(started)).start(tmp)
        url = f"http://{gw.address}"
        wait_for(f"{url}/ready", timeout=30)
        # Every version ready and its metadata known: a 503 now would be the gateway's fault.
        for version in HOSTS:
            wait_for(f"{url}/v2/models/churn/versions/{version}/ready", timeout=30)
            wait_for(f"{url}/v2/models/churn/versions/{version}", timeout=30)
        yield url
    finally:
        if gw is not None:
            gw.stop()
        for proc in started.values():
            proc.stop()


@pytest.fixture(scope="module")
def v2_api(v2_gateway: str) -> Any:
    document = httpx.get(f"{v2_gateway}/openapi.json", timeout=10).json()
    # The V2 part only (a filter on the loaded schema does not reach the pytest plugin).
    document["paths"] = {p: op for p, op in document["paths"].items() if p.startswith("/v2")}
    assert len(document["paths"]) == 9
    schema = schemathesis.openapi.from_dict(document)
    schema.config.base_url = v2_gateway  # type: ignore[attr-defined]
    return schema


schema = schemathesis.pytest.from_fixture("v2_api")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same requests each run: a failure reproduces
)
def test_no_v2_operation_answers_a_5xx(case: schemathesis.Case, v2_gateway: str) -> None:
    case.call_and_validate(base_url=v2_gateway, checks=[not_a_server_error], timeout=10)


def test_real_replicas_metadata_keeps_the_input_contract(v2_gateway: str) -> None:
    metadata = httpx.get(f"{v2_gateway}/v2/models/churn", timeout=10).json()
    assert metadata["versions"] == list(HOSTS)
    assert [(t["name"], t["datatype"]) for t in metadata["inputs"]] == list(MODEL_API_INPUTS)
    assert "churn_probability" in {t["name"] for t in metadata["outputs"]}
    contract = httpx.get(f"{v2_gateway}/routing", timeout=10).json()["input_contract"]
    assert contract["reference"]["version"] == "v2.3.1"
    assert contract["versions"] == dict.fromkeys(HOSTS, {"status": "agrees"})
