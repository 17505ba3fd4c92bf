"""The gateway built by create_app with its production forwarding client (NativeUpstream) in
front of small HTTP servers on 127.0.0.1, in this process: no fakes on the forwarding path."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.app import GatewayApp, create_app
from gateway.upstream import NativeUpstream
from tests.gateway.fakes import settings_for, write_routing


class Replica(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, version: str) -> None:
        super().__init__(("127.0.0.1", 0), ReplicaHandler)
        self.version = version
        self.posts: list[bytes] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class ReplicaHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Replica

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._send(200, json.dumps({"status": "healthy", "model_version": self.server.version}))

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.posts.append(body)
        size = int(self.headers.get("X-Answer-Bytes") or 0)
        if size:
            self._send(200, "z" * size)
        else:
            self._send(200, json.dumps({"model_version": self.server.version, "echo": len(body)}))

    def _send(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Model-Version", self.server.version)
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def replicas() -> Iterator[dict[str, Replica]]:
    started = {version: Replica(version) for version in ("v2.3.1", "v2.4.0")}
    threads = [
        threading.Thread(target=r.serve_forever, args=(0.05,), daemon=True)
        for r in started.values()
    ]
    for thread in threads:
        thread.start()
    yield started
    for replica in started.values():
        replica.shutdown()
        replica.server_close()


@pytest.fixture
def client(tmp_path: Path, replicas: dict[str, Replica]) -> Iterator[TestClient]:
    resolve = {
        "stable-a:8000": replicas["v2.3.1"].address,
        "stable-b:8000": replicas["v2.3.1"].address,
        "canary-a:8000": replicas["v2.4.0"].address,
    }
    settings = settings_for(
        write_routing(tmp_path / "routing.yaml"),
        resolve=resolve,
        transport="native",
        max_response_bytes=1000,
    )
    with TestClient(create_app(settings)) as test_client:  # the default client, as in production
        yield test_client


def test_create_app_forwards_with_the_native_client(
    client: TestClient, replicas: dict[str, Replica]
) -> None:
    app = client.app
    assert isinstance(app, GatewayApp) and app.proxy is not None
    assert isinstance(app.proxy.upstream, NativeUpstream)
    for version in ("v2.3.1", "v2.4.0"):
        response = client.post(
            "/predict", content=b'{"a": 1}', headers={"X-Model-Version": version}
        )
        assert response.status_code == 200
        assert response.headers["X-Model-Version"] == version
        assert response.headers["X-Route-Reason"] == "pinned"
        assert response.json() == {"model_version": version, "echo": 8}
    assert replicas["v2.4.0"].posts == [b'{"a": 1}']


def test_answer_over_the_response_limit_is_a_502(
    client: TestClient, replicas: dict[str, Replica]
) -> None:
    pin = {"X-Model-Version": "v2.4.0"}
    response = client.post("/predict", content=b"{}", headers={**pin, "X-Answer-Bytes": "1001"})
    assert response.status_code == 502
    assert response.json()["error"] == "bad_upstream"
    assert "over 1000 bytes" in response.json()["detail"]
    response = client.post("/predict", content=b"{}", headers={**pin, "X-Answer-Bytes": "1000"})
    assert response.status_code == 200 and response.content == b"z" * 1000


def test_header_with_cr_lf_is_refused_before_anything_is_sent(
    client: TestClient, replicas: dict[str, Replica]
) -> None:
    # The server's parser keeps these out; the client refuses them all the same.
    app = client.app
    assert isinstance(app, GatewayApp) and app.proxy is not None
    proxy = app.proxy
    headers = [(b"x-model-version", b"v2.4.0"), (b"x-note", b"a\r\nx-injected: 1")]

    async def forward() -> tuple[int, bytes]:
        answer = await proxy.forward("/predict", headers, b"{}", time.perf_counter())
        return answer.status, answer.body

    status, body = client.portal.call(forward)  # type: ignore[union-attr]
    assert status == 400
    assert json.loads(body)["error"] == "bad_request"
    assert "x-note" in json.loads(body)["detail"]
    assert replicas["v2.4.0"].posts == []
