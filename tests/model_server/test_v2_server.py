"""V2 inference on the replica's server protocol (model_server/server.py): answered from the
short-cut byte for byte as the FastAPI route answers it, in JSON and in binary, errors
included; a replica not ready goes to the route."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI

from model_server.schemas import EXAMPLE_CUSTOMER
from protocols.v2.codec import RequestedOutput
from tests.model_server.test_api import customers
from tests.model_server.test_server import Connection, ask
from tests.model_server.v2_requests import v2_body

INFER = "/v2/models/churn/infer"


def post(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: replica"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def comparable(answer: bytes) -> bytes:
    """An answer without what differs from one answer to the next (the date, the timings and
    the length their digits move, checked against the body here)."""
    head, _, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"\r\ncontent-length: ([0-9]+)", head)
    assert length is not None and int(length.group(1)) == len(body), head
    answer = re.sub(rb"\r\ncontent-length: [0-9]+", b"\r\ncontent-length: -", answer)
    answer = re.sub(rb"date: [^\r]*", b"date: -", answer)
    return re.sub(rb"x-response-time-ms: [0-9.]+", b"x-response-time-ms: -", answer)


def head_names(answer: bytes) -> list[bytes]:
    head = answer.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]
    return [line.split(b":")[0] for line in head]


async def both(app: FastAPI, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The short-cut's answer, asserted equal to the route's (a query string keeps the same
    request off the short-cut)."""
    short_cut = await ask(app, post(path, body, headers))
    route = await ask(app, post(path + "?route=1", body, headers))
    assert comparable(short_cut) == comparable(route)
    return short_cut


async def test_one_row_is_answered_at_once_as_the_route_answers_it(app: FastAPI) -> None:
    connection = Connection(app)
    body, headers = v2_body([EXAMPLE_CUSTOMER], request_id="r-9")
    connection.send(post(INFER, body, headers))
    short_cut = bytes(connection.transport.written)
    assert short_cut.startswith(b"HTTP/1.1 200 OK\r\n")
    assert not connection.protocol.tasks  # scored inline: no task, no turn of the loop
    connection.close()
    route = await ask(app, post(INFER + "?route=1", body, headers))
    assert comparable(short_cut) == comparable(route)
    assert b'"id":"r-9"' in short_cut
    assert head_names(short_cut) == [
        b"date",
        b"server",
        b"content-length",
        b"content-type",
        b"x-model-version",
        b"x-response-time-ms",
    ]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("rows", [1, 40], ids=["one-row", "batch"])
async def test_json_and_binary_answers_are_the_routes(
    app: FastAPI, binary: bool, rows: int
) -> None:
    body, headers = v2_body(customers(rows), binary=binary, binary_data_output=binary)
    for path in (INFER, "/v2/models/churn/versions/v2.3.1/infer"):
        answer = await both(app, path, body, headers)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        if binary:
            assert b"\r\ninference-header-content-length: " in answer
            assert b"\r\ncontent-type: application/octet-stream\r\n" in answer
            assert head_names(answer)[2:4] == [
                b"inference-header-content-length",
                b"content-length",
            ]


async def test_outputs_asked_for_are_answered_as_the_route_does(app: FastAPI) -> None:
    asked = [RequestedOutput("churn_probability", binary=True), RequestedOutput("risk_tier")]
    body, headers = v2_body(customers(3), outputs=asked)
    answer = await both(app, INFER, body, headers)
    assert b"top_reasons" not in answer


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"{not json", {"content-type": "application/json"}, 400),
        (
            b'{"inputs": [{"name": "tenure", "datatype": "INT64", "shape": [9], "data": [1]}]}',
            {},
            400,
        ),
        (b'{"inputs": [1]}', {"content-type": "text/plain"}, 400),
        (b"{}", {"inference-header-content-length": "99"}, 400),
        (b"{}", {"inference-header-content-length": "x"}, 400),
    ],
    ids=["bad-json", "count-mismatch", "text-plain", "header-past-body", "header-not-a-number"],
)
async def test_errors_are_the_routes(
    app: FastAPI,
    body: bytes,
    headers: dict[str, str],
    status: int,
) -> None:
    answer = await both(app, INFER, body, headers)
    assert answer.startswith(b"HTTP/1.1 %d " % status)
    assert re.search(rb'\r\n\r\n\{"error":"', answer)


async def test_a_bad_value_is_the_routes_400(app: FastAPI) -> None:
    body, headers = v2_body([{**EXAMPLE_CUSTOMER, "tenure": -4}])
    answer = await both(app, INFER, body, headers)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"input 'tenure': row 0: Input should be greater than or equal to 0" in answer


async def test_not_ready_goes_to_the_routes_503(app: FastAPI) -> None:
    predictor, app.state.predictor = app.state.predictor, None
    try:
        answer = await both(app, INFER, *v2_body([EXAMPLE_CUSTOMER]))
    finally:
        app.state.predictor = predictor
    assert answer.startswith(b"HTTP/1.1 503 ")


async def test_another_models_path_is_the_routes_404(app: FastAPI) -> None:
    answer = await both(app, "/v2/models/iris/infer", *v2_body([EXAMPLE_CUSTOMER]))
    assert answer.startswith(b"HTTP/1.1 404 ")


class Asked:
    """A short-cut request as the protocol hands it over (httpserver.Request)."""

    def __init__(self, path: str, headers: dict[str, str]) -> None:
        self.path = path
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self.start = 0.0


async def test_the_short_cut_itself_answers_batches_and_binary(app: FastAPI) -> None:
    service = app.state.short_cut
    assert INFER.encode() in service.short_cut_paths
    assert b"/v2/models/churn/versions/v2.3.1/infer" in service.short_cut_paths
    body, headers = v2_body(customers(40), binary=True, binary_data_output=True)
    pending = service.answer(Asked(INFER, headers), body)
    answer = await pending  # a batch is scored in a worker thread: a coroutine
    assert answer is not None and answer.status == 200
    assert answer.head.startswith(b"inference-header-content-length: ")
