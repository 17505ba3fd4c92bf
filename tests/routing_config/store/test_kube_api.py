"""Reaching the API server: in a pod by default, STREAMFLOW_KUBE_API to override, the token read
again as it rotates."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from routing_config.store import kube_api
from routing_config.store.kube_api import KubeConnection, KubeUnavailable, TokenAuth


def test_in_a_pod_the_service_address_is_used() -> None:
    conn = KubeConnection.from_env(
        {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}
    )
    assert conn.base_url == "https://10.0.0.1:6443"
    assert conn.token_file == kube_api.SERVICE_ACCOUNT_DIR / "token"
    ipv6 = KubeConnection.from_env({"KUBERNETES_SERVICE_HOST": "fd00::1"})
    assert ipv6.base_url == "https://[fd00::1]:443"


def test_the_override_and_the_token_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("abc\n")
    conn = KubeConnection.from_env(
        {"STREAMFLOW_KUBE_API": "http://127.0.0.1:9999/", "STREAMFLOW_KUBE_TOKEN_FILE": str(token)}
    )
    assert conn.base_url == "http://127.0.0.1:9999" and conn.token_file == token


def test_outside_a_pod_without_an_override_it_says_what_to_set() -> None:
    with pytest.raises(KubeUnavailable, match="STREAMFLOW_KUBE_API"):
        KubeConnection.from_env({})


def test_the_token_is_read_again_after_it_rotates(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first")
    seen: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(200)

    clock = [1000.0]
    auth = TokenAuth(token, clock=lambda: clock[0])
    with httpx.Client(auth=auth, transport=httpx.MockTransport(record)) as client:
        client.get("http://kube.test/")
        token.write_text("second")
        client.get("http://kube.test/")  # within the refresh interval: the one read
        clock[0] += kube_api.TOKEN_REFRESH_S
        client.get("http://kube.test/")
    assert seen == ["Bearer first", "Bearer first", "Bearer second"]
    with KubeConnection("http://kube.test", token, None).client() as client:
        assert isinstance(client.auth, TokenAuth)
