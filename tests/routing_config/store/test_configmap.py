"""The ConfigMap store: reads the document as text, writes a merge patch carrying the
resourceVersion it read, re-applies the edit on 409, never writes an invalid document."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from routing_config import ConfigError, RoutingEditError
from routing_config.document import Document
from routing_config.store import ConfigMapStore, open_store
from routing_config.store.configmap import MAX_ATTEMPTS
from routing_config.store.kube_api import KubeConnection
from routing_config.store.location import ConfigMapRef, configmap_ref

ROUTING = """\
# the operator's note, kept by every edit
service: streamflow-churn
stable: v2.3.1
mode: canary
versions:
  v2.3.1:
    replicas: [http://a:8000]
  v2.4.0:
    replicas: [http://b:8000]
canary:
  weights: {v2.3.1: 90, v2.4.0: 10}   # ramp slowly
"""
PATH = "/api/v1/namespaces/streamflow/configmaps/streamflow-routing"
REF = ConfigMapRef("streamflow", "streamflow-routing")


class FakeApi:
    """One ConfigMap behind httpx.MockTransport; ``interfere`` runs before each patch."""

    def __init__(self, text: str = ROUTING) -> None:
        self.text = text
        self.version = 7
        self.patches: list[dict[str, Any]] = []
        self.interfere: list[str] = []  # texts another writer puts in before our next patch

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == PATH
        if request.method == "GET":
            return httpx.Response(200, json=self.obj())
        assert request.method == "PATCH"
        assert request.headers["content-type"] == "application/merge-patch+json"
        if self.interfere:
            self.text = self.interfere.pop(0)
            self.version += 1
        body = json.loads(request.content)
        self.patches.append(body)
        if body["metadata"]["resourceVersion"] != str(self.version):
            return httpx.Response(409, json={"kind": "Status", "code": 409, "reason": "Conflict"})
        self.text = body["data"]["routing.yaml"]
        self.version += 1
        return httpx.Response(200, json=self.obj())

    def obj(self) -> dict[str, Any]:
        meta = {"name": "streamflow-routing", "resourceVersion": str(self.version)}
        return {"kind": "ConfigMap", "metadata": meta, "data": {"routing.yaml": self.text}}

    def store(self) -> ConfigMapStore:
        def connection() -> KubeConnection:
            return KubeConnection("http://kube.test", None, None)

        return ConfigMapStore(
            REF, connection, httpx.MockTransport(self.handle), sleep=lambda s: None
        )


def set_canary(weight: int) -> Any:
    def edit(doc: Document) -> str:
        doc.data["canary"]["weights"]["v2.4.0"] = weight
        doc.data["canary"]["weights"]["v2.3.1"] = 100 - weight
        return f"canary {weight}"

    return edit


def test_a_location_names_a_configmap_or_a_path() -> None:
    assert configmap_ref("configmap:streamflow/streamflow-routing") == REF
    assert configmap_ref("routing.yaml") is None
    assert isinstance(open_store("configmap:streamflow/streamflow-routing"), ConfigMapStore)
    for bad in ("configmap:streamflow", "configmap:Upper/x", "configmap:/x", "configmap:a/"):
        with pytest.raises(ConfigError, match="configmap:NAMESPACE/NAME"):
            configmap_ref(bad)


def test_read_gives_the_text_and_its_resource_version() -> None:
    api = FakeApi()
    stored = api.store().read()
    assert stored.text == ROUTING and stored.version == "7"
    assert api.store().load().config.weights() == {"v2.3.1": 90, "v2.4.0": 10}


def test_an_edit_is_patched_against_the_version_read_and_keeps_comments() -> None:
    api = FakeApi()
    loaded = api.store().edit(set_canary(25))
    assert loaded is not None and loaded.config.weights() == {"v2.3.1": 75, "v2.4.0": 25}
    assert api.patches[0]["metadata"] == {"resourceVersion": "7"}
    assert "# the operator's note" in api.text and "# ramp slowly" in api.text
    assert "{v2.3.1: 75, v2.4.0: 25}" in api.text


def test_a_conflict_reapplies_the_edit_to_the_new_document_and_keeps_the_other_change() -> None:
    api = FakeApi()
    # Another writer flips the mode (keeping validity) between our read and our patch.
    api.interfere.append(ROUTING.replace("service: streamflow-churn", "service: renamed"))
    loaded = api.store().edit(set_canary(40))
    assert loaded is not None
    assert len(api.patches) == 2 and api.patches[1]["metadata"]["resourceVersion"] == "8"
    assert "service: renamed" in api.text and "v2.4.0: 40" in api.text


def test_an_edit_that_keeps_conflicting_gives_up_without_writing() -> None:
    api = FakeApi()
    api.interfere.extend(ROUTING.replace("90", "90 ") for _ in range(MAX_ATTEMPTS))
    with pytest.raises(RoutingEditError, match=f"{MAX_ATTEMPTS} attempts"):
        api.store().edit(set_canary(40))
    assert "v2.4.0: 40" not in api.text


def test_an_invalid_result_is_never_written() -> None:
    api = FakeApi()

    def break_weights(doc: Document) -> str:
        doc.data["canary"]["weights"]["v2.4.0"] = 30  # sums to 120
        return "canary.weights v2.4.0=30"

    with pytest.raises(RoutingEditError) as caught:
        api.store().edit(break_weights)
    assert "not written" in caught.value.lines[0]
    assert "configmap:streamflow/streamflow-routing" in caught.value.lines[0]
    assert any("sum to 120" in line for line in caught.value.lines)
    assert api.patches == [] and api.text == ROUTING


def test_nothing_to_do_writes_nothing() -> None:
    api = FakeApi()
    assert api.store().edit(lambda doc: None) is None
    assert api.patches == []


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, {"kind": "Status", "message": 'configmaps "streamflow-routing" not found'}, "404"),
        (403, {"kind": "Status", "message": "forbidden: cannot get"}, "forbidden"),
        (200, {"kind": "ConfigMap", "metadata": {}, "data": {}}, "no data key 'routing.yaml'"),
    ],
)
def test_read_failures_are_config_errors_naming_the_location(
    status: int, body: dict[str, Any], expected: str
) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json=body))
    store = ConfigMapStore(REF, lambda: KubeConnection("http://kube.test", None, None), transport)
    with pytest.raises(ConfigError) as caught:
        store.load()
    assert expected in str(caught.value)
    assert "configmap:streamflow/streamflow-routing" in str(caught.value)
    with pytest.raises(RoutingEditError, match=expected):
        store.edit(set_canary(5))


def test_an_unreachable_api_is_a_clear_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    store = ConfigMapStore(
        REF, lambda: KubeConnection("http://kube.test", None, None), httpx.MockTransport(refuse)
    )
    with pytest.raises(ConfigError, match="Kubernetes API unreachable"):
        store.read()
