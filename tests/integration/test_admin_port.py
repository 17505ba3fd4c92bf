"""``GATEWAY_ADMIN_PORT``: the operators' endpoints answer on the admin port only.

A real ``python -m gateway serve`` with one worker and with two (each worker serves both
sockets), over two tiny replicas; every request opens a new connection, so with two workers both
accept some, and each must keep the split.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.listeners import NOT_FOUND
from tests.integration.fake_replicas import Proc, running_fakes
from tests.integration.procs import free_port, routing_yaml, wait_for

VERSIONS = {"v2.3.1": ["fake-a"], "v2.4.0": ["fake-b"]}
TOKEN = "admin-port-test-token"
# The operators' paths: each answers on the admin port, and 404 (as an unknown path) on the
# client port.
ADMIN_GETS = [
    "/routing",
    "/stats",
    "/shadow",
    "/quality",
    "/metrics",
    "/ui",
    "/ui/assets/index.html",
    "/docs",
    "/docs/assets/swagger-ui.css",
    "/openapi.json",
]
ROUNDS = 4  # fresh connections per path and port: with two workers, both take some


@pytest.fixture(scope="module")
def proc_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("admin-port-logs")


@pytest.fixture(scope="module")
def fakes(proc_log_dir: Path) -> Iterator[dict[str, Proc]]:
    with running_fakes(VERSIONS, proc_log_dir) as started:
        yield started


@pytest.fixture(scope="module", params=[1, 2], ids=["1-worker", "2-workers"])
def gateway(
    request: pytest.FixtureRequest,
    fakes: dict[str, Proc],
    tmp_path_factory: pytest.TempPathFactory,
    proc_log_dir: Path,
) -> Iterator[tuple[str, str]]:
    """(client URL, admin URL) of a running gateway with an admin port."""
    workers: int = request.param
    tmp = tmp_path_factory.mktemp(f"admin-port-{workers}")
    routing = tmp / "routing.yaml"
    routing.write_text(routing_yaml(VERSIONS, weights={"v2.3.1": 100, "v2.4.0": 0}))
    port, admin = free_port(), free_port()
    argv = [
        sys.executable, "-m", "gateway", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    env = {
        "GATEWAY_ROUTING_FILE": str(routing),
        "GATEWAY_RESOLVE": json.dumps({f"{n}:8000": p.address for n, p in fakes.items()}),
        "GATEWAY_ADMIN_PORT": str(admin),
        "GATEWAY_PREDICTION_LOG": "1",
        "GATEWAY_DATA_DIR": str(tmp / "data"),
        "GATEWAY_OUTCOMES_TOKEN": TOKEN,
        "TMPDIR": str(tmp),
    }
    proc = Proc(f"gateway-admin-{workers}", argv, env, port).start(proc_log_dir)
    try:
        wait_for(f"http://127.0.0.1:{port}/ready", timeout=60)
        wait_for(f"http://127.0.0.1:{admin}/routing", timeout=30)
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}"
    finally:
        proc.stop()


def fresh(method: str, url: str, **kwargs: object) -> httpx.Response:
    """One request on a connection of its own."""
    with httpx.Client(timeout=10.0) as client:
        return client.request(method, url, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ADMIN_GETS)
def test_operators_paths_answer_only_on_the_admin_port(gateway: tuple[str, str], path: str) -> None:
    client_url, admin_url = gateway
    for _ in range(ROUNDS):
        on_admin = fresh("GET", admin_url + path)
        assert on_admin.status_code == 200, (path, on_admin.text[:200])
        on_client = fresh("GET", client_url + path)
        assert on_client.status_code == 404, path
        assert on_client.json() == NOT_FOUND, path


def test_a_refused_path_looks_like_an_unknown_one(gateway: tuple[str, str]) -> None:
    client_url, _ = gateway
    refused = fresh("GET", client_url + "/routing")
    unknown = fresh("GET", client_url + "/no-such-path")
    assert (refused.status_code, refused.json()) == (unknown.status_code, unknown.json())


def test_the_client_port_keeps_predictions_probes_and_outcomes(gateway: tuple[str, str]) -> None:
    client_url, admin_url = gateway
    for _ in range(ROUNDS):
        for path in ("/health", "/ready"):
            assert fresh("GET", client_url + path).status_code == 200, path
        answer = fresh("POST", client_url + "/predict", json={"tenure": 3})
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-model-version"] == "v2.3.1"
        batch = fresh("POST", client_url + "/predict/batch", json={"customers": []})
        assert batch.status_code == 200, batch.text
        # A chunked body takes the ASGI path rather than the server's short-cut: still served.
        chunked = fresh("POST", client_url + "/predict", content=iter([b'{"tenure":', b" 3}"]))
        assert chunked.status_code == 200, chunked.text
    # The outcomes writer is there, behind its token: 401 without it, not a 404.
    outcomes = fresh("POST", client_url + "/outcomes", json=[])
    assert outcomes.status_code == 401, outcomes.text
    with_token = fresh(
        "POST", client_url + "/outcomes", json=[], headers={"authorization": f"Bearer {TOKEN}"}
    )
    assert with_token.status_code != 404, with_token.text
    # Probes work on either port.
    assert fresh("GET", admin_url + "/health").status_code == 200


def test_the_admin_port_reports_the_client_ports_traffic(gateway: tuple[str, str]) -> None:
    """One app behind both ports: the metrics read on the admin port count the client port's
    predictions (summed over the workers)."""
    client_url, admin_url = gateway

    def served() -> float:
        text = fresh("GET", admin_url + "/metrics").text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("gateway_requests_total{")
        )

    before = served()
    for _ in range(5):
        assert fresh("POST", client_url + "/predict", json={"tenure": 1}).status_code == 200
    # Workers publish their counts for the others about once a second.
    deadline = time.monotonic() + 5.0
    while served() < before + 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert served() >= before + 5


def test_the_admin_port_binds_its_own_host(
    fakes: dict[str, Proc], tmp_path: Path, proc_log_dir: Path
) -> None:
    """GATEWAY_ADMIN_HOST: the admin listener on 127.0.0.2 only, the client port on 127.0.0.1."""
    routing = tmp_path / "routing.yaml"
    routing.write_text(routing_yaml(VERSIONS, weights={"v2.3.1": 100, "v2.4.0": 0}))
    port, admin = free_port(), free_port()
    argv = [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", str(port)]
    env = {
        "GATEWAY_ROUTING_FILE": str(routing),
        "GATEWAY_RESOLVE": json.dumps({f"{n}:8000": p.address for n, p in fakes.items()}),
        "GATEWAY_ADMIN_PORT": str(admin),
        "GATEWAY_ADMIN_HOST": "127.0.0.2",
    }
    proc = Proc("gateway-admin-host", argv, env, port).start(proc_log_dir)
    try:
        wait_for(f"http://127.0.0.1:{port}/ready", timeout=60)
        wait_for(f"http://127.0.0.2:{admin}/routing", timeout=30)
        with pytest.raises(httpx.ConnectError):
            fresh("GET", f"http://127.0.0.1:{admin}/routing")
        with pytest.raises(httpx.ConnectError):
            fresh("GET", f"http://127.0.0.2:{port}/health")
        assert fresh("GET", f"http://127.0.0.1:{port}/routing").status_code == 404
    finally:
        proc.stop()
