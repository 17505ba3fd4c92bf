"""The Open Inference Protocol's infer door: routed like /predict, the versioned path a pin,
binary tensors passed through or translated, /predict on a V2-only version, errors in the
protocol's form, the request's id as the request id."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import create_app
from gateway.errors import UnknownModel
from gateway.lanes import V2Call
from gateway.server import ProxyService
from gateway.v2_door import V2Door, infer_target
from measures.request_counts import request_counts
from outcomes.records import Answered, predictions_of
from protocols.scores import v2_scores
from protocols.v2.codec import decode_response
from routing_config import load_config
from tests.gateway.fakes import settings_for, write_routing
from tests.gateway.v2_fakes import V2_ROUTING, metadata_doc, our_replicas_metadata
from tests.gateway.v2_infer_fakes import (
    CUSTOMER,
    REFUSED,
    V2InferReplicas,
    probability,
    v2_request,
)

STABLE = ("10.0.0.1:1", "10.0.0.2:1")
CANARY = "10.0.0.3:1"
INFER = "/v2/models/churn/infer"


def ours() -> V2InferReplicas:
    return V2InferReplicas(metadata=our_replicas_metadata())


def with_sklearn_canary() -> V2InferReplicas:
    metadata = our_replicas_metadata()
    metadata[CANARY] = metadata_doc(
        "churn-sk", ["v2.4.0"], platform="sklearn", outputs=(("predict_proba", "FP64"),)
    )
    return V2InferReplicas(metadata=metadata, sklearn={CANARY})


def start(tmp_path: Path, fakes: V2InferReplicas, routing: str | None = None) -> TestClient:
    path = tmp_path / "routing.yaml"
    if routing is None:
        write_routing(path, stable_weight=50, canary_weight=50)
    else:
        path.write_text(routing)
    return TestClient(create_app(settings_for(path), **fakes.transports()))


def sklearn_routing(stable_weight: int = 0, canary_weight: int = 100) -> str:
    return V2_ROUTING.format(stable_weight=stable_weight, canary_weight=canary_weight)


@pytest.fixture
def fakes() -> V2InferReplicas:
    return ours()


@pytest.fixture
def client(tmp_path: Path, fakes: V2InferReplicas) -> Iterator[TestClient]:
    with start(tmp_path, fakes) as test_client:
        yield test_client


def post(client: TestClient, path: str = INFER, **kwargs: Any) -> httpx.Response:
    body, headers = v2_request([CUSTOMER], **kwargs)
    return client.post(path, content=body, headers=headers)


# --- routed like /predict -----------------------------------------------------------------------


def test_infer_is_routed_and_tagged_like_predict(
    client: TestClient, fakes: V2InferReplicas
) -> None:
    body, headers = v2_request([CUSTOMER], request_id="req-1")
    response = client.post(INFER, content=body, headers=headers)
    assert response.status_code == 200
    answer = response.json()
    version = response.headers["X-Model-Version"]
    assert version in {"v2.3.1", "v2.4.0"}
    assert response.headers["X-Route-Reason"] == "weighted"
    assert len(response.headers["X-Routing-Revision"]) == 12
    assert answer["model_name"] == "churn"
    assert answer["model_version"] == version
    assert answer["id"] == "req-1"
    assert fakes.seen_targets[-1] == INFER
    assert fakes.seen_bodies[-1] == body  # the body went as it came


def test_the_request_id_is_the_requests_id_unless_the_client_sent_one(
    client: TestClient, fakes: V2InferReplicas
) -> None:
    body, headers = v2_request([CUSTOMER], request_id="order-42")
    response = client.post(INFER, content=body, headers=headers)
    assert response.headers["X-Request-Id"] == "order-42"
    assert fakes.seen_headers[-1]["x-request-id"] == "order-42"
    response = client.post(INFER, content=body, headers={**headers, "X-Request-Id": "mine"})
    assert response.headers["X-Request-Id"] == "mine"
    assert response.json()["id"] == "order-42"  # the body's id is still echoed


@pytest.mark.parametrize("bad_id", ["line\r\nx-evil: 1", "x" * 200, " padded", "naïve"])
def test_an_id_that_cannot_be_a_header_stays_in_the_body_only(
    client: TestClient, bad_id: str
) -> None:
    response = post(client, request_id=bad_id)
    assert response.status_code == 200
    made = response.headers["X-Request-Id"]
    assert len(made) == 32 and made != bad_id
    assert response.json()["id"] == bad_id


def test_sticky_key_keeps_its_version_on_v2_as_on_predict(client: TestClient) -> None:
    body, headers = v2_request([CUSTOMER])
    for key in ("alice", "bob", "carol"):
        sticky = {**headers, "X-Customer-Id": key}
        seen = {
            client.post(INFER, content=body, headers=sticky).headers["X-Model-Version"]
            for _ in range(8)
        }
        assert len(seen) == 1
        response = client.post(INFER, content=body, headers=sticky)
        assert response.headers["X-Route-Reason"] == "sticky"
        predict = client.post("/predict", json=CUSTOMER, headers={"X-Customer-Id": key})
        assert predict.headers["X-Model-Version"] == seen.pop()  # one door or the other


def test_failing_canary_falls_back_to_stable(tmp_path: Path, fakes: V2InferReplicas) -> None:
    fakes.behaviour[CANARY] = "500"
    with start(tmp_path, fakes) as client:
        for _ in range(12):
            response = post(client)
            assert response.status_code == 200
            assert response.headers["X-Model-Version"] == "v2.3.1"
        reasons = {post(client).headers["X-Route-Reason"] for _ in range(20)}
        assert "fallback" in reasons


# --- the versioned path: a pin ------------------------------------------------------------------


def test_the_versioned_path_always_answers_with_that_version(client: TestClient) -> None:
    for version in ("v2.3.1", "v2.4.0"):
        for _ in range(6):
            response = post(client, f"/v2/models/churn/versions/{version}/infer")
            assert response.status_code == 200
            assert response.headers["X-Model-Version"] == version
            assert response.headers["X-Route-Reason"] == "pinned"
            assert response.json()["model_version"] == version


def test_a_pinned_version_never_falls_back(tmp_path: Path, fakes: V2InferReplicas) -> None:
    fakes.behaviour[CANARY] = "down"
    with start(tmp_path, fakes) as client:
        response = post(client, "/v2/models/churn/versions/v2.4.0/infer")
        assert response.status_code == 503
        assert set(response.json()) == {"error"}
        assert "v2.4.0" in response.json()["error"]


def test_a_version_outside_the_allow_list_is_a_400(tmp_path: Path, fakes: V2InferReplicas) -> None:
    path = write_routing(tmp_path / "routing.yaml")
    path.write_text(path.read_text().replace("allow: [v2.3.1, v2.4.0]", "allow: [v2.3.1]"))
    with TestClient(create_app(settings_for(path), **fakes.transports())) as client:
        response = post(client, "/v2/models/churn/versions/v2.4.0/infer")
        assert response.status_code == 400
        assert response.json() == {"error": "version 'v2.4.0' cannot be pinned; allowed: v2.3.1"}
        path.write_text(
            path.read_text().replace("pinning: {header: X-Model-Version, allow: [v2.3.1]}\n", "")
        )
    with TestClient(create_app(settings_for(path), **fakes.transports())) as client:
        response = post(client, "/v2/models/churn/versions/v2.3.1/infer")
        assert response.status_code == 400
        assert "allowed: none" in response.json()["error"]


def test_unknown_model_and_version_are_404s_naming_the_known_ones(client: TestClient) -> None:
    response = post(client, "/v2/models/fraud/infer")
    assert response.status_code == 404
    assert response.json() == {"error": "unknown model 'fraud'; this gateway serves 'churn'"}
    response = post(client, "/v2/models/churn/versions/v9/infer")
    assert response.status_code == 404
    assert response.json()["error"] == (
        "unknown version 'v9' of model 'churn'; known versions: v2.3.1, v2.4.0"
    )
    assert client.get(INFER).status_code == 405
    assert client.get(INFER).json() == {"error": "use POST"}


def test_errors_take_the_protocols_form(client: TestClient, fakes: V2InferReplicas) -> None:
    body, headers = v2_request([CUSTOMER], binary=True)
    response = client.post(
        INFER, content=body, headers={**headers, "inference-header-content-length": "99999"}
    )
    assert response.status_code == 400
    assert "past the body" in response.json()["error"]
    calls = sum(fakes.calls.values())
    response = client.post(INFER, content=b"x" * (2 << 20), headers=headers)
    assert response.status_code == 413
    assert set(response.json()) == {"error"}
    assert sum(fakes.calls.values()) == calls  # nothing was forwarded


def test_the_short_cut_takes_this_models_infer_paths_and_follows_reloads(
    client: TestClient,
) -> None:
    app = client.app
    service = ProxyService(app)  # type: ignore[arg-type]
    paths = service.short_cut_paths
    assert paths[b"/predict"] == "/predict"
    assert paths[b"/v2/models/churn/infer"] == INFER
    assert (
        paths[b"/v2/models/churn/versions/v2.4.0/infer"] == "/v2/models/churn/versions/v2.4.0/infer"
    )
    assert b"/v2/models/fraud/infer" not in paths
    assert len(paths) == 5  # closed: /predict, /predict/batch, infer, one per version


PLAIN_ROUTING = """\
service: streamflow-churn
stable: v2.3.1
mode: canary
versions:
  v2.3.1: {replicas: [http://stable-a:8000]}
  v2.4.0+rc_1: {replicas: [http://canary-a:8000]}
canary: {weights: {v2.3.1: 100, v2.4.0+rc_1: 0}}
"""


def test_a_plain_request_gets_the_call_its_path_and_body_say(tmp_path: Path) -> None:
    """The calls made once per routing config for plain requests are the ones a request's own
    reading makes: the pin of the path, the body's id as request id, nothing of a query."""
    door = V2Door(None)  # type: ignore[arg-type]  # call_of asks nothing of the proxy
    path = tmp_path / "routing.yaml"
    path.write_text(PLAIN_ROUTING)
    config = load_config(path).config
    body, _ = v2_request([CUSTOMER])
    json_headers = [(b"content-type", b"application/json")]
    assert door.call_of(config, INFER, json_headers, body) == V2Call(None, None, "", None)
    versioned = "/v2/models/churn/versions/v2.3.1/infer"
    assert door.call_of(config, versioned, json_headers, body) == V2Call("v2.3.1", None, "", None)
    with_id, _ = v2_request([CUSTOMER], request_id="r-9")
    assert door.call_of(config, INFER, json_headers, with_id).request_id == b"r-9"
    sent_id = [*json_headers, (b"x-request-id", b"mine")]
    assert door.call_of(config, INFER, sent_id, with_id) == V2Call(None, None, "", None)
    assert door.call_of(config, INFER + "?x=1", json_headers, body).query == "?x=1"
    for version in config.versions:
        pinned = f"/v2/models/churn/versions/{version}/infer"
        assert infer_target(pinned) == ("churn", version, "")
        assert door.call_of(config, pinned, json_headers, body) == V2Call(version, None, "", None)
    with pytest.raises(UnknownModel, match="unknown version 'v9'"):
        door.call_of(config, "/v2/models/churn/versions/v9/infer", json_headers, body)
    with pytest.raises(UnknownModel, match="unknown model 'fraud'"):
        door.call_of(config, "/v2/models/fraud/infer", json_headers, body)
    # Another config (a reload) is read afresh.
    write_routing(path)
    reloaded = load_config(path).config
    pinned = "/v2/models/churn/versions/v2.4.0/infer"
    assert door.call_of(reloaded, pinned, json_headers, body) == V2Call("v2.4.0", None, "", None)
    with pytest.raises(UnknownModel):
        door.call_of(config, pinned, json_headers, body)


# --- binary tensors -----------------------------------------------------------------------------


def test_binary_tensors_pass_through_to_our_replicas(
    client: TestClient, fakes: V2InferReplicas
) -> None:
    body, headers = v2_request(
        [CUSTOMER, {**CUSTOMER, "tenure": 40}], binary=True, parameters={"binary_data_output": True}
    )
    response = client.post(INFER, content=body, headers=headers)
    assert response.status_code == 200
    assert fakes.seen_bodies[-1] == body
    length = int(response.headers["inference-header-content-length"])
    assert response.headers["content-type"] == "application/octet-stream"
    answer = decode_response(response.content, length)
    assert answer.model_name == "churn"
    scores = v2_scores(response.content, length)
    assert [s.probability for s in scores] == [probability(14), probability(40)]
    assert scores[0].reasons == ("tenure", "contract_type", "monthly_charges")


def test_binary_to_a_json_only_version_is_translated_both_ways(
    tmp_path: Path,
) -> None:
    fakes = with_sklearn_canary()
    with start(tmp_path, fakes, sklearn_routing()) as client:
        body, headers = v2_request(
            [CUSTOMER, {**CUSTOMER, "tenure": 3}],
            binary=True,
            request_id="bin-1",
            parameters={"binary_data_output": True},
        )
        response = client.post(INFER, content=body, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["X-Model-Version"] == "v2.4.0"
        sent = fakes.seen_bodies[-1]
        assert "inference-header-content-length" not in fakes.seen_headers[-1]
        assert orjson.loads(sent)["outputs"] == [{"name": "predict_proba"}]  # asked for its score
        length = int(response.headers["inference-header-content-length"])
        answer = decode_response(response.content, length)
        # The model contract's outputs, the gateway's model name, the version that served.
        assert answer.model_name == "churn"
        assert answer.model_version == "v2.4.0"
        assert answer.id == "bin-1"
        assert set(answer.outputs) == {"churn_probability", "risk_tier"}
        assert answer.parameters == {"reasons_available": False}
        p = [probability(14) - 0.01, probability(3) - 0.01]
        assert list(answer.outputs["churn_probability"].data) == pytest.approx(p)
        assert answer.outputs["risk_tier"].data == [b"medium", b"high"]


def test_a_json_client_asking_the_servers_own_outputs_gets_them(tmp_path: Path) -> None:
    fakes = with_sklearn_canary()
    with start(tmp_path, fakes, sklearn_routing()) as client:
        body, headers = v2_request([CUSTOMER], outputs=[{"name": "predict_proba"}])
        response = client.post(INFER, content=body, headers=headers)
        assert response.status_code == 200
        answer = response.json()
        assert answer["model_name"] == "churn"  # the gateway's name, not churn-sk
        assert [o["name"] for o in answer["outputs"]] == ["predict_proba"]


def test_a_v2_server_is_sent_json_whatever_content_type_the_client_said(tmp_path: Path) -> None:
    """curl -d says application/x-www-form-urlencoded; MLServer reads the content type."""
    fakes = with_sklearn_canary()
    with start(tmp_path, fakes, sklearn_routing()) as client:
        for outputs in (None, [{"name": "predict_proba"}]):
            body, _ = v2_request([CUSTOMER], outputs=outputs)
            form = {"content-type": "application/x-www-form-urlencoded"}
            assert client.post(INFER, content=body, headers=form).status_code == 200
            sent, _ = fakes.seen_infers[-1]
            assert sent["content-type"] == "application/json"


def test_a_broken_binary_request_to_a_json_only_version_is_a_400_naming_the_tensor(
    tmp_path: Path,
) -> None:
    fakes = with_sklearn_canary()
    with start(tmp_path, fakes, sklearn_routing()) as client:
        body, headers = v2_request([CUSTOMER], binary=True)
        response = client.post(INFER, content=body[:-3], headers=headers)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error.startswith("input 'streaming_services': ") and "past the body" in error
        assert fakes.calls[CANARY] == 0


def test_a_v2_servers_400_passes_to_the_client_unchanged_and_counts_as_no_failure(
    tmp_path: Path,
) -> None:
    """MLServer's 400 for bad input (the exported runtime's checks) is the client's answer, as
    it came: not read as an answer (no protocol_error), not retried on stable, not a failure
    of the version (no error in /stats, no upstream error, no ejection however many)."""
    fakes = with_sklearn_canary()
    fakes.behaviour[CANARY] = "refuse"
    with start(tmp_path, fakes, sklearn_routing()) as client:
        for binary in (False, True, False, True, False, True):  # past eject_after_failures
            body, headers = v2_request([{**CUSTOMER, "tenure": -1}], binary=binary)
            response = client.post(INFER, content=body, headers=headers)
            assert response.status_code == 400
            assert response.content == REFUSED
            assert response.headers["content-type"] == "application/json"
            assert response.headers["X-Model-Version"] == "v2.4.0"
            assert response.headers["X-Route-Reason"] == "weighted"
        assert fakes.calls[CANARY] == 6
        assert all(fakes.calls[address] == 0 for address in STABLE)
        metrics = client.get("/metrics").text
        for family in ("upstream_errors", "fallbacks", "replica_ejections"):
            assert f"gateway_{family}_total{{" not in metrics
        # The counts the rollout judge and the status page read: 6 requests, no error.
        samples = [
            sample
            for family in text_string_to_metric_families(metrics)
            for sample in family.samples
        ]
        counts = request_counts(samples)["v2.4.0"]
        assert (counts.requests, counts.errors) == (6, 0)
        # Still served by the canary: nothing ejected it.
        fakes.behaviour[CANARY] = "ok"
        assert post(client).headers["X-Model-Version"] == "v2.4.0"


# --- /predict on a V2-only version --------------------------------------------------------------


def test_predict_on_a_v2_only_version_is_translated_with_reasons_unavailable(
    tmp_path: Path,
) -> None:
    fakes = with_sklearn_canary()
    with start(tmp_path, fakes, sklearn_routing()) as client:
        response = client.post("/predict", json=CUSTOMER)
        assert response.status_code == 200, response.text
        assert response.headers["X-Model-Version"] == "v2.4.0"
        assert fakes.seen_targets[-1] == "/v2/models/churn-sk/infer"
        answer = response.json()
        assert answer["churn_probability"] == pytest.approx(probability(14) - 0.01)
        assert answer["risk_tier"] == "medium"
        assert answer["top_reasons"] == [] and answer["reasons_available"] is False
        assert answer["model_version"] == "v2.4.0"
        batch = client.post("/predict/batch", json={"customers": [CUSTOMER, CUSTOMER]})
        assert batch.status_code == 200
        assert batch.json()["batch_size"] == 2
        assert batch.json()["processing_time_ms"] >= 0  # what the model API's batch answer has


def test_a_bad_predict_body_for_a_v2_only_version_is_the_model_apis_422(tmp_path: Path) -> None:
    fakes = with_sklearn_canary()
    with start(tmp_path, fakes, sklearn_routing()) as client:
        response = client.post("/predict", json={**CUSTOMER, "tenure": "many"})
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert detail[0]["loc"] == ["body", "tenure"]
        assert fakes.calls[CANARY] == 0


def test_an_unreadable_v2_answer_falls_back_to_stable(tmp_path: Path) -> None:
    fakes = with_sklearn_canary()
    fakes.behaviour[CANARY] = "empty"
    with start(tmp_path, fakes, sklearn_routing()) as client:
        response = client.post("/predict", json=CUSTOMER)
        assert fakes.calls[CANARY] == 1
        assert response.status_code == 200
        assert response.headers["X-Model-Version"] == "v2.3.1"
        assert response.headers["X-Route-Reason"] == "fallback"


# --- the prediction log -------------------------------------------------------------------------


def test_the_log_gets_v2_answers_with_the_id_as_request_id(
    client: TestClient,
) -> None:
    logged: list[Answered] = []
    proxy = client.app.proxy
    proxy.record = logged.append
    body, headers = v2_request(
        [CUSTOMER, {**CUSTOMER, "tenure": 60}],
        request_id="log-7",
        binary=True,
        parameters={"binary_data_output": True},
    )
    assert client.post(INFER, content=body, headers=headers).status_code == 200
    assert client.post("/predict", json=CUSTOMER).status_code == 200
    v2, predict = logged
    assert v2.request_id == b"log-7"
    assert v2.header_length is not None
    rows = predictions_of(v2)
    assert [r.request_id for r in rows] == ["log-7", "log-7"]
    assert [r.row for r in rows] == [0, 1]
    assert [r.churn_probability for r in rows] == [probability(14), probability(60)]
    assert [r.risk_tier for r in rows] == ["medium", "low"]
    assert predict.source is None


# --- shadow -------------------------------------------------------------------------------------


def shadow_report(client: TestClient, requests: int) -> dict[str, Any]:
    """The one pair's report once ``requests`` mirrors were compared (mirrors run after the
    answer, on the app's loop)."""
    for _ in range(200):
        pairs = client.get("/shadow").json()["pairs"]
        if pairs and pairs[0]["compared"] >= requests:
            return dict(pairs[0])
        time.sleep(0.01)
    raise AssertionError(f"no {requests} compared mirrors: {client.get('/shadow').json()}")


def test_a_v2_only_shadow_is_compared_on_probability_and_tier_not_reasons(
    tmp_path: Path,
) -> None:
    fakes = with_sklearn_canary()
    routing = sklearn_routing(100, 0) + "shadow: {version: v2.4.0, percent: 100}\n"
    with start(tmp_path, fakes, routing) as client:
        logged: list[Answered] = []
        proxy = client.app.proxy  # type: ignore[attr-defined]
        proxy.record = proxy.mirror.record = logged.append
        body, headers = v2_request(
            [CUSTOMER, {**CUSTOMER, "tenure": 2}],
            binary=True,
            request_id="sh-1",
            parameters={"binary_data_output": True},
        )
        assert client.post(INFER, content=body, headers=headers).status_code == 200
        assert client.post("/predict", json=CUSTOMER).status_code == 200
        report = shadow_report(client, 2)
        assert report["primary"] == "v2.3.1" and report["shadow"] == "v2.4.0"
        assert report["failed"] == 0
        assert report["rows"] == 3
        assert report["top_reason"]["explained_rows"] == 0  # the shadow gives no reasons
        # The shadow was asked for its score output, as JSON (it takes no binary tensors).
        sent = [orjson.loads(b) for h, b in fakes.seen_infers if h.get("x-shadow-of")]
        assert len(sent) == 2  # the V2 request's copy, and /predict's, translated
        assert all(s["outputs"] == [{"name": "predict_proba"}] for s in sent)
        shadow = [a for a in logged if a.request_id == b"sh-1" and a.assignment == "shadow"]
        rows = predictions_of(shadow[0])
        assert [r.churn_probability for r in rows] == pytest.approx(
            [probability(14) - 0.01, probability(2) - 0.01]
        )
        assert {r.assignment for r in rows} == {"shadow"}


def test_a_shadow_of_ours_compares_reasons_too(tmp_path: Path, fakes: V2InferReplicas) -> None:
    path = write_routing(tmp_path / "routing.yaml", stable_weight=100, canary_weight=0)
    path.write_text(path.read_text() + "shadow: {version: v2.4.0, percent: 100}\n")
    with TestClient(create_app(settings_for(path), **fakes.transports())) as client:
        assert post(client).status_code == 200
        report = shadow_report(client, 1)
        assert report["rows"] == 1
        assert report["top_reason"]["explained_rows"] == 1
        assert report["top_reason"]["same_top_percent"] == 100.0


def test_binary_to_a_v2_server_that_takes_it_stays_binary(tmp_path: Path) -> None:
    """A Triton-like version (protocol: v2, binary_tensors: true): the request stays binary,
    only its JSON part asks for the score output; the answer is the contract's, binary."""
    fakes = ours()
    routing = sklearn_routing().replace(
        "    model_name: churn-sk\n    score: {output: predict_proba, column: 1}\n",
        "    binary_tensors: true\n",
    )
    assert "binary_tensors: true" in routing
    with start(tmp_path, fakes, routing) as client:
        body, headers = v2_request(
            [CUSTOMER], binary=True, parameters={"binary_data_output": True}, request_id="t-1"
        )
        response = client.post(INFER, content=body, headers=headers)
        assert response.status_code == 200, response.text
        sent_headers, sent = fakes.seen_infers[-1]
        length = int(sent_headers["inference-header-content-length"])
        assert orjson.loads(sent[:length])["outputs"] == [{"name": "churn_probability"}]
        old_length = int(headers["inference-header-content-length"])
        assert sent[length:] == body[old_length:]  # the tensors as they came
        answer_length = int(response.headers["inference-header-content-length"])
        answer = decode_response(response.content, answer_length)
        assert (answer.model_version, answer.id) == ("v2.4.0", "t-1")
        assert set(answer.outputs) == {"churn_probability", "risk_tier"}
        assert list(answer.outputs["churn_probability"].data) == [probability(14)]
