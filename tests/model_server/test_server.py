"""The replica's server protocol (model_server/server.py): a plain prediction is answered from
the protocol, byte for byte as the FastAPI route answers it; everything the route would answer
differently goes to the route.

The app is built and loaded once; each test drives ``ReplicaProtocol`` on a transport that
keeps what is written, and asks the same app the same thing through the route (a query string
keeps a request off the short-cut) to compare.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from uvicorn.config import Config
from uvicorn.server import ServerState

from model_server.schemas import EXAMPLE_CUSTOMER
from model_server.server import ReplicaProtocol
from tests.httpserver.fake_transport import FakeTransport

CUSTOMER = json.dumps(EXAMPLE_CUSTOMER).encode()
BATCH = json.dumps({"customers": [EXAMPLE_CUSTOMER, {**EXAMPLE_CUSTOMER, "tenure": 40}]}).encode()


class Connection:
    def __init__(self, app: FastAPI) -> None:
        config = Config(app=app, lifespan="off", access_log=False)
        config.load()
        state = ServerState()
        # What uvicorn's server sets (and renews every second): the date, then its name.
        state.default_headers = [
            (b"date", b"Thu, 03 Dec 2026 12:00:00 GMT"),
            (b"server", b"uvicorn"),
        ]
        self.protocol = ReplicaProtocol(config=config, server_state=state, app_state={})
        self.transport = FakeTransport(port=8000)
        self.protocol.connection_made(self.transport)

    def send(self, data: bytes) -> None:
        self.protocol.data_received(data)

    async def answer(self) -> bytes:
        """The whole answer written so far, waiting for it (at most 5 s)."""
        for _ in range(500):
            head, sep, body = bytes(self.transport.written).partition(b"\r\n\r\n")
            length = re.search(rb"content-length: (\d+)", head)
            if sep and length and len(body) >= int(length.group(1)):
                return bytes(self.transport.written)
            await asyncio.sleep(0.01)
        raise TimeoutError(bytes(self.transport.written))

    def close(self) -> None:
        self.protocol.connection_lost(None)


def post(path: str, body: bytes, content_type: str | None = "application/json") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: replica"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def comparable(answer: bytes) -> bytes:
    """An answer without what differs from one answer to the next: the date, the timings, and
    the length, which the timings' digits move (checked against the body here instead)."""
    head, _, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"content-length: ([0-9]+)", head, re.IGNORECASE)
    assert length is not None and int(length.group(1)) == len(body), head
    answer = re.sub(rb"content-length: [0-9]+", b"content-length: -", answer)
    answer = re.sub(rb"date: [^\r]*", b"date: -", answer)
    answer = re.sub(rb"x-response-time-ms: [0-9.]+", b"x-response-time-ms: -", answer)
    return re.sub(rb'"processing_time_ms":[0-9.]+', b'"processing_time_ms":-', answer)


async def ask(app: FastAPI, request: bytes) -> bytes:
    connection = Connection(app)
    try:
        connection.send(request)
        return await connection.answer()
    finally:
        connection.close()


async def test_a_plain_prediction_is_answered_at_once_as_the_route_answers_it(
    app: FastAPI,
) -> None:
    connection = Connection(app)
    connection.send(post("/predict", CUSTOMER))
    # Answered from the protocol, in the same call: no task, no turn of the event loop.
    short_cut = bytes(connection.transport.written)
    assert short_cut.startswith(b"HTTP/1.1 200 OK\r\n")
    assert not connection.protocol.tasks
    connection.close()
    route = await ask(app, post("/predict?route=1", CUSTOMER))
    assert comparable(short_cut) == comparable(route)
    head = short_cut.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]
    assert [line.split(b":")[0] for line in head] == [
        b"date",
        b"server",
        b"content-length",
        b"content-type",
        b"x-model-version",
        b"x-response-time-ms",
    ]


async def test_a_batch_is_answered_as_the_route_answers_it(app: FastAPI) -> None:
    short_cut = await ask(app, post("/predict/batch", BATCH))
    route = await ask(app, post("/predict/batch?route=1", BATCH))
    assert short_cut.startswith(b"HTTP/1.1 200 OK\r\n")
    assert comparable(short_cut) == comparable(route)


@pytest.mark.parametrize(
    ("path", "body", "content_type", "status"),
    [
        ("/predict", b'{"tenure": -1}', "application/json", 422),
        ("/predict", CUSTOMER.replace(b"month-to-month", b"weekly"), "application/json", 422),
        ("/predict", b"{not json", "application/json", 422),
        ("/predict", CUSTOMER.replace(b"14", b"NaN", 1), "application/json", 422),
        ("/predict", CUSTOMER, "text/plain", 422),
        ("/predict", CUSTOMER, None, 422),
        ("/predict", CUSTOMER, "application/json; charset=utf-8", 200),
        ("/predict/batch", b'{"customers": []}', "application/json", 422),
        ("/predict/batch", b'{"customers": [{"tenure": 1}]}', "application/json", 422),
        ("/predict/batch", b"[1, 2]", "application/json", 422),
    ],
    ids=[
        "out-of-bounds",
        "unknown-category",
        "bad-json",
        "nan",
        "text-plain",
        "no-content-type",
        "json-with-charset",
        "empty-batch",
        "incomplete-batch-row",
        "batch-not-an-object",
    ],
)
async def test_what_the_route_answers_differently_is_answered_by_the_route(
    app: FastAPI, path: str, body: bytes, content_type: str | None, status: int
) -> None:
    short_cut = await ask(app, post(path, body, content_type))
    route = await ask(app, post(path + "?route=1", body, content_type))
    assert short_cut.startswith(b"HTTP/1.1 %d " % status), short_cut[:300]
    assert comparable(short_cut) == comparable(route)


async def test_not_ready_is_the_routes_503(app: FastAPI) -> None:
    predictor = app.state.predictor
    app.state.predictor = None
    try:
        short_cut = await ask(app, post("/predict", CUSTOMER))
        route = await ask(app, post("/predict?route=1", CUSTOMER))
    finally:
        app.state.predictor = predictor
    assert short_cut.startswith(b"HTTP/1.1 503 ")
    assert comparable(short_cut) == comparable(route)


def counts(app: FastAPI) -> dict[str, float]:
    """Every sample of /metrics but the latency sums (time differs from call to call)."""
    text = TestClient(app).get("/metrics").text  # no `with`: the lifespan does not run again
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "_created" not in line:
            name, _, value = line.rpartition(" ")
            if "duration_seconds" not in name or name.split("{")[0].endswith("_count"):
                samples[name] = float(value)
    return samples


def moved(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {
        name: value - before.get(name, 0.0)
        for name, value in after.items()
        if value != before.get(name, 0.0)
    }


@pytest.mark.parametrize(
    ("path", "body", "shadow"),
    [("/predict", CUSTOMER, False), ("/predict", CUSTOMER, True), ("/predict/batch", BATCH, False)],
    ids=["single", "single-shadow", "batch"],
)
async def test_the_metrics_count_a_short_cut_answer_as_the_routes(
    app: FastAPI, path: str, body: bytes, shadow: bool
) -> None:
    request = post(path, body)
    routed = post(path + "?route=1", body)
    if shadow:
        request = request.replace(b"Host: replica", b"Host: replica\r\nX-Shadow-Of: abc")
        routed = routed.replace(b"Host: replica", b"Host: replica\r\nX-Shadow-Of: abc")
    start = counts(app)
    await ask(app, request)
    middle = counts(app)
    await ask(app, routed)
    end = counts(app)
    by_short_cut, by_route = moved(start, middle), moved(middle, end)
    assert by_short_cut
    assert by_short_cut == by_route


async def test_the_replicas_connections_are_counted_in_one_tally(app: FastAPI) -> None:
    # The connection cap (httpserver/connection_cap.py) counts the process's connections.
    first, second = Connection(app), Connection(app)
    try:
        assert first.protocol.tally is second.protocol.tally
        assert first.protocol.tally.open >= 2
        opened = first.protocol.tally.open
    finally:
        first.close()
    assert second.protocol.tally.open == opened - 1
    second.close()
