"""POST /predict's fast path: the same answers as the route, and FastAPI's own errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from model_server.app import create_app
from model_server.fast_path import PredictFastPath
from model_server.schemas import EXAMPLE_CUSTOMER, ChurnPredictionRequest
from model_server.settings import ModelSettings
from tests.model_server.test_api import customers

BODY = json.dumps(EXAMPLE_CUSTOMER).encode()


@pytest.fixture(scope="module")
def client(artifacts_dir: Path) -> Iterator[TestClient]:
    settings = ModelSettings(version="v2.3.1", path=artifacts_dir / "v2.3.1" / "model.joblib")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_fast_and_routed_answers_are_the_same(client: TestClient) -> None:
    fast = client.post("/predict", content=BODY, headers={"content-type": "application/json"})
    # A media type with parameters is left to FastAPI's route.
    routed = client.post(
        "/predict", content=BODY, headers={"content-type": "application/json; charset=utf-8"}
    )
    assert fast.status_code == routed.status_code == 200
    assert fast.content == routed.content
    for name in ("content-type", "x-model-version"):
        assert fast.headers[name] == routed.headers[name]
    assert float(fast.headers["x-response-time-ms"]) >= 0


def test_invalid_bodies_get_fastapis_errors(client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    bad = client.post("/predict", content=BODY.replace(b"fiber_optic", b"cable"), headers=headers)
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "internet_service"]
    broken = client.post("/predict", content=b'{"tenure": ', headers=headers)
    assert broken.status_code == 422
    assert broken.json()["detail"][0]["type"] == "json_invalid"


class Recorder:
    """An inner app that records what it received."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        await Response(b"inner")(scope, receive, send)


def call(app: PredictFastPath, chunks: list[bytes], content_type: bytes) -> list[Message]:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict",
        "headers": [(b"content-type", content_type)],
        "query_string": b"",
    }
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    anyio.run(app, scope, receive, send)
    return sent


def test_a_body_in_chunks_reaches_the_endpoint() -> None:
    seen: list[ChurnPredictionRequest] = []

    async def endpoint(customer: ChurnPredictionRequest, request: Request) -> Response:
        seen.append(customer)
        return Response(b"fast")

    async def batch_endpoint(matrix: object, request: Request) -> Response:
        raise AssertionError("a /predict body reached the batch endpoint")

    inner = Recorder()
    app = PredictFastPath(inner, endpoint, batch_endpoint)
    sent = call(app, [BODY[:10], BODY[10:]], b"application/json")
    assert seen == [ChurnPredictionRequest(**EXAMPLE_CUSTOMER)]
    assert sent[-1]["body"] == b"fast"
    assert inner.bodies == []
    # Invalid: the inner app gets the whole body, as the client sent it.
    bad = BODY.replace(b"14", b"-1")
    call(app, [bad[:7], bad[7:]], b"application/json")
    assert inner.bodies == [bad]
    # Another media type never takes the fast path.
    call(app, [BODY], b"text/plain")
    assert inner.bodies == [bad, BODY]
    assert len(seen) == 1


def batch_body(rows: list[dict]) -> bytes:
    return json.dumps({"customers": rows}).encode()


def without_time(content: bytes) -> dict:
    document = json.loads(content)
    assert document.pop("processing_time_ms") >= 0
    return document


def test_fast_and_routed_batches_are_the_same(client: TestClient) -> None:
    body = batch_body(customers(25))
    fast = client.post("/predict/batch", content=body, headers={"content-type": "application/json"})
    routed = client.post(
        "/predict/batch", content=body, headers={"content-type": "application/json; charset=utf-8"}
    )
    assert fast.status_code == routed.status_code == 200
    assert without_time(fast.content) == without_time(routed.content)
    assert fast.json()["batch_size"] == 25
    for name in ("content-type", "x-model-version"):
        assert fast.headers[name] == routed.headers[name]
    # A cell pydantic coerces ("14" for an int) gets the route's coerced answer.
    coerced = customers(3)
    coerced[1]["tenure"] = str(coerced[1]["tenure"])
    answer = client.post("/predict/batch", content=batch_body(coerced), headers=JSON)
    plain = client.post("/predict/batch", content=batch_body(customers(3)), headers=JSON)
    assert without_time(answer.content) == without_time(plain.content)


JSON = {"content-type": "application/json"}


def test_invalid_batches_get_fastapis_errors(client: TestClient) -> None:
    rows = customers(5)
    rows[3]["contract_type"] = "monthly"
    bad = client.post("/predict/batch", content=batch_body(rows), headers=JSON)
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "customers", 3, "contract_type"]
    too_many = client.post("/predict/batch", content=batch_body(customers(1001)), headers=JSON)
    assert too_many.status_code == 422
    assert too_many.json()["detail"][0]["type"] == "too_long"
    broken = client.post("/predict/batch", content=b'{"customers": [', headers=JSON)
    assert broken.status_code == 422
    assert broken.json()["detail"][0]["type"] == "json_invalid"
