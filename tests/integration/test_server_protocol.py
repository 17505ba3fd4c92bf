"""The shared HTTP/1.1 server protocol (httpserver/) on the wire, with real processes.

``python -m gateway serve`` (uvicorn with ``GatewayProtocol``) in front of two tiny replicas
(tests/integration/trivial_replica.py). Plain ``POST /predict*`` requests take the protocol's
short-cut to ``Proxy.forward``; chunked bodies, ``Expect: 100-continue``, query strings and bodies
over the limit take uvicorn's ASGI path. Both must look the same to a client: keep-alive,
pipelining order, ``Connection: close``, HTTP/1.0, disconnects and graceful shutdown.

The tests that take a ``server`` run against a real model-server replica too (uvicorn with
``ReplicaProtocol``, as the local stack runs it), where plain predictions are scored from the
protocol and the rest go to FastAPI: the framing, pipelining and closing rules, and the answer
of each path, are the same there.

Requests are written on raw sockets and answers parsed with httptools, so what is checked is
exactly what went over the wire (duplicate headers, interim answers, who closes the connection).
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path

import httptools
import httpx
import pytest

from tests.integration.fake_replicas import Proc, running_fakes
from tests.integration.procs import REPO_ROOT, free_port, routing_yaml, wait_for
from vocabulary.metric_names import MODEL_REQUEST_DURATION

MAX_BODY = 2000  # GATEWAY_MAX_BODY_BYTES of the gateways started here
MAX_ANSWER = 100_000  # GATEWAY_MAX_RESPONSE_BYTES of the gateways started here
VERSIONS = {"v2.3.1": ["fake-a"], "v2.4.0": ["fake-b"]}
STABLE = "v2.3.1"  # weights 100/0: every prediction goes to fake-a
IO_TIMEOUT = 10.0  # the longest any one socket read waits
KEEP_ALIVE_S = 5.0  # uvicorn's default timeout_keep_alive; gateway serve keeps it
CUSTOMER = b'{"tenure": 12, "monthly_charges": 70.5}'


# --- processes ------------------------------------------------------------------------------


def gateway_serve(name: str, routing: Path, fakes: dict[str, Proc]) -> Proc:
    port = free_port()
    argv = [
        sys.executable, "-m", "gateway", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = {
        "GATEWAY_ROUTING_FILE": str(routing),
        "GATEWAY_RESOLVE": json.dumps({f"{n}:8000": p.address for n, p in fakes.items()}),
        "GATEWAY_HEALTH_INTERVAL_S": "0.2",
        "GATEWAY_HEALTH_TIMEOUT_S": "1.0",
        "GATEWAY_MAX_BODY_BYTES": str(MAX_BODY),
        "GATEWAY_MAX_RESPONSE_BYTES": str(MAX_ANSWER),
        "GATEWAY_ACCESS_LOG": "false",  # the short-cut is off while uvicorn logs every request
    }
    return Proc(name, argv, env, port)


@pytest.fixture(scope="module")
def proc_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("protocol-logs")


@pytest.fixture(scope="module")
def fakes(proc_log_dir: Path) -> Iterator[dict[str, Proc]]:
    with running_fakes(VERSIONS, proc_log_dir) as started:
        yield started


@pytest.fixture(scope="module")
def routing_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("protocol-routing") / "routing.yaml"
    path.write_text(routing_yaml(VERSIONS, weights={"v2.3.1": 100, "v2.4.0": 0}))
    return path


def start_gateway(name: str, routing: Path, fakes: dict[str, Proc], log_dir: Path) -> Proc:
    proc = gateway_serve(name, routing, fakes).start(log_dir)
    try:
        wait_for(f"{proc.url}/ready", timeout=30)
    except BaseException:
        proc.stop()
        raise
    return proc


@pytest.fixture(scope="module")
def gw(fakes: dict[str, Proc], routing_file: Path, proc_log_dir: Path) -> Iterator[Proc]:
    """The gateway most tests share (one worker, so every connection meets the same process)."""
    proc = start_gateway("gateway", routing_file, fakes, proc_log_dir)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def revision(gw: Proc) -> str:
    return httpx.get(f"{gw.url}/routing", timeout=5).json()["revision"]


# --- the wire -------------------------------------------------------------------------------


@dataclass
class Answer:
    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)  # names lower-cased
    body: bytes = b""

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    def one(self, name: str) -> str:
        values = self.all(name)
        assert len(values) == 1, f"{name}: {values} in {self.headers}"
        return values[0]

    def json(self) -> dict[str, object]:
        return json.loads(self.body)


class Wire:
    """One raw client connection to the gateway; answers parsed by httptools as they arrive."""

    def __init__(self, address: str, timeout: float = IO_TIMEOUT) -> None:
        host, port = address.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.timeout = timeout
        self.parser = httptools.HttpResponseParser(self)
        self.answers: deque[Answer] = deque()
        self.current = Answer()
        self.chunks: list[bytes] = []

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, *requests: bytes) -> None:
        self.sock.sendall(b"".join(requests))

    def read(self, timeout: float | None = None) -> Answer:
        """The next whole answer (interim 1xx answers included, each as its own)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.answers:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no whole answer in time")
            self.sock.settimeout(remaining)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the gateway closed the connection before a whole answer")
            self.parser.feed_data(data)
        return self.answers.popleft()

    def closed_by_gateway(self, within: float = 3.0) -> bool:
        """True once the gateway closes the connection (within ``within`` s, nothing else sent)."""
        self.sock.settimeout(max(within, 0.05))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        assert not data, f"bytes after the last answer: {data[:200]!r}"
        return True

    def is_open(self) -> bool:
        """Whether the gateway still holds the connection open (does not wait)."""
        self.sock.setblocking(False)
        try:
            data = self.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return True
        except ConnectionResetError:
            return False
        finally:
            self.sock.settimeout(self.timeout)
        assert not data, "unexpected bytes from the gateway"
        return False

    # httptools callbacks

    def on_message_begin(self) -> None:
        self.current = Answer()
        self.chunks = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self.current.headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.current.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.current.body = b"".join(self.chunks)
        self.answers.append(self.current)


Headers = Sequence[tuple[str, str]]


def request(
    path: str = "/predict",
    body: bytes | None = CUSTOMER,
    headers: Headers = (),
    *,
    method: str = "POST",
    version: str = "1.1",
    content_length: int | None = None,
) -> bytes:
    """Raw request bytes; a Content-Length (the body's, or the one given) when there is a body."""
    lines = [f"{method} {path} HTTP/{version}", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body is not None:
        lines.append(f"Content-Length: {len(body) if content_length is None else content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def chunked_head(path: str = "/predict", headers: Headers = ()) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Transfer-Encoding: chunked"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


def json_of_size(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes (at least 10)."""
    body = b'{"pad":"' + b"x" * (size - 10) + b'"}'
    assert len(body) == size
    return body


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_prediction(
    answer: Answer,
    revision: str,
    *,
    sent: bytes = CUSTOMER,
    request_id: str | None = None,
    path: str = "/predict",
    keep_alive: bool | None = True,
) -> None:
    """A 200 from fake-a, tagged by the gateway, with the headers a client may rely on.

    ``keep_alive``: the answer must (not) say ``connection: close``; None: either.
    """
    assert answer.status == 200, (answer.status, answer.body[:300])
    assert answer.one("x-model-version") == STABLE
    assert answer.one("x-route-reason") == "weighted"
    assert answer.one("x-routing-revision") == revision
    rid = answer.one("x-request-id")  # the replica's own X-Request-Id must not show
    if request_id is None:
        assert re.fullmatch(r"[0-9a-f]{32}", rid), rid
    else:
        assert rid == request_id
    assert float(answer.one("x-response-time-ms")) >= 0
    assert int(answer.one("content-length")) == len(answer.body)
    assert answer.one("content-type") == "application/json"
    assert_date_is_now(answer)  # the gateway's, not a second one from the replica
    assert answer.one("server") == "uvicorn"
    assert answer.one("x-replica-name") == "fake-a"  # replica headers do pass through
    assert answer.all("keep-alive") == []  # hop-by-hop from the replica: not passed on
    assert answer.all("transfer-encoding") == []
    if keep_alive is not None:
        assert answer.all("connection") == ([] if keep_alive else ["close"])
    else:
        assert answer.all("connection") in ([], ["close"])
    seen = answer.json()
    assert seen["model_version"] == STABLE
    assert seen["request_id"] == rid  # the replica was sent the id the client sees
    assert seen["path"] == path
    assert seen["body_bytes"] == len(sent)
    assert seen["body_sha256"] == sha256(sent)
    assert seen["content_length"] == str(len(sent))
    assert seen["transfer_encoding"] is None
    assert seen["expect"] is None


def assert_date_is_now(answer: Answer) -> None:
    """One Date header, and a current one (uvicorn renews it every second)."""
    date = parsedate_to_datetime(answer.one("date")).timestamp()
    assert abs(date - time.time()) <= 5.0, answer.one("date")


def assert_gateway_health(answer: Answer, *, keep_alive: bool = True) -> None:
    assert answer.status == 200, (answer.status, answer.body[:300])
    assert answer.json() == {"status": "healthy"}
    assert_date_is_now(answer)
    assert int(answer.one("content-length")) == len(answer.body)
    assert answer.all("x-model-version") == []
    assert answer.all("connection") == ([] if keep_alive else ["close"])


def assert_clean_log(proc: Proc) -> None:
    log = proc.log()
    # "Exception in": uvicorn's "... ASGI application" and asyncio's "... callback".
    for bad in ("Traceback", "unexpected error", "Exception in"):
        assert bad not in log, log[-3000:]


# --- the two servers: a gateway over fake replicas, and a real replica -----------------------

EXAMPLE = json.loads((REPO_ROOT / "examples" / "customer.json").read_text())


def customer(marker: int) -> dict[str, object]:
    """A customer per marker (0 to 71) whose answer differs from every other marker's."""
    return {
        **EXAMPLE,
        "tenure": marker,
        "monthly_charges": 20.0 + 1.5 * marker,
        "total_charges": 100.0 + 37.0 * marker,
    }


@pytest.fixture(scope="module")
def replica_proc(artifacts_dir: Path, proc_log_dir: Path) -> Iterator[Proc]:
    port = free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "--factory", "model_server.app:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        "--no-access-log", "--http", "model_server.server:ReplicaProtocol",
    ]  # fmt: skip
    env = {
        "MODEL_VERSION": STABLE,
        "MODEL_PATH": str(artifacts_dir / STABLE / "model.joblib"),
    }
    proc = Proc("replica", argv, env, port).start(proc_log_dir)
    try:
        wait_for(f"{proc.url}/ready", timeout=120)
        yield proc
    finally:
        proc.stop()


@dataclass
class Served:
    """What a test sends one of the two servers, and what it checks of the answers."""

    kind: str  # "gateway" or "replica"
    proc: Proc
    revision: str = ""  # the gateway's routing revision
    fakes: dict[str, Proc] = field(default_factory=dict)  # the gateway's replicas
    references: dict[tuple[int, str], dict[str, object]] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return self.proc.address

    def body(self, marker: int, path: str = "/predict") -> bytes:
        if self.kind == "gateway":
            return json_of_size(40 + marker)  # its size and digest come back from the fake
        one = customer(marker)
        batch = path.split("?")[0] == "/predict/batch"
        return json.dumps({"customers": [one]} if batch else one).encode()

    def request(
        self, marker: int, path: str = "/predict", headers: Headers = (), version: str = "1.1"
    ) -> bytes:
        extra = [*self.headers(marker), *headers]
        return request(path, self.body(marker, path), extra, version=version)

    def headers(self, marker: int) -> list[tuple[str, str]]:
        # A replica's endpoints read JSON only when told it is JSON, as FastAPI's do.
        json_type = [("Content-Type", "application/json")] if self.kind == "replica" else []
        return [("X-Request-Id", f"m-{marker}"), *json_type]

    def chunked(self, marker: int, path: str = "/predict", pieces: int = 3) -> bytes:
        data = self.body(marker, path)
        step = -(-len(data) // pieces)
        parts = [chunk(data[i : i + step]) for i in range(0, len(data), step)]
        head = chunked_head(path, self.headers(marker))
        return head + b"".join(parts) + LAST_CHUNK

    def check(
        self, answer: Answer, marker: int, path: str = "/predict", keep_alive: bool = True
    ) -> None:
        if self.kind == "gateway":
            sent = self.body(marker, path)
            assert_prediction(
                answer,
                self.revision,
                sent=sent,
                request_id=f"m-{marker}",
                path=path,
                keep_alive=keep_alive,
            )
            return
        assert_replica_answer(answer, keep_alive=keep_alive)
        expected = self.reference(marker, path)
        got = answer.json()
        if "predictions" in expected:
            assert got["predictions"] == expected["predictions"]
            assert got["batch_size"] == expected["batch_size"]
        else:
            assert got == expected

    def reference(self, marker: int, path: str) -> dict[str, object]:
        """The FastAPI route's answer (a query string keeps it off the short-cut)."""
        base = path.split("?")[0]
        key = (marker, base)
        if key not in self.references:
            url = f"{self.proc.url}{base}?reference=1"
            answer = httpx.post(url, content=self.body(marker, base), timeout=10, headers=JSON)
            assert answer.status_code == 200, answer.text
            self.references[key] = answer.json()
        return self.references[key]

    def expect(self, *markers: tuple[int, str]) -> None:
        """Ask the route for these answers now: a test counting what was scored asks first."""
        if self.kind == "replica":
            for marker, path in markers:
                self.reference(marker, path)

    def check_health(self, answer: Answer, keep_alive: bool = True) -> None:
        if self.kind == "gateway":
            assert_gateway_health(answer, keep_alive=keep_alive)
            return
        assert answer.status == 200, (answer.status, answer.body[:300])
        assert answer.json() == {"status": "healthy", "model_version": STABLE}
        assert_date_is_now(answer)
        assert int(answer.one("content-length")) == len(answer.body)
        assert answer.one("x-model-version") == STABLE
        assert answer.all("connection") == ([] if keep_alive else ["close"])

    def scored(self) -> int:
        """Prediction requests that reached a replica's model so far."""
        if self.kind == "gateway":
            return posts_seen(self.fakes)
        text = httpx.get(f"{self.proc.url}/metrics", timeout=5).text
        counts = re.findall(rf"^{MODEL_REQUEST_DURATION.name}_count{{[^}}]*}} (\S+)$", text, re.M)
        return int(sum(float(count) for count in counts))


JSON = {"content-type": "application/json"}
# The replica's answer headers, in order, on either path (uvicorn's two, the route's two, then
# the two the VersionHeaders middleware adds; uvicorn's connection: close last when it closes).
REPLICA_HEADERS = [
    "date",
    "server",
    "content-length",
    "content-type",
    "x-model-version",
    "x-response-time-ms",
]


def assert_replica_answer(answer: Answer, *, keep_alive: bool = True) -> None:
    assert answer.status == 200, (answer.status, answer.body[:300])
    names = [name for name, _ in answer.headers]
    assert names == REPLICA_HEADERS + ([] if keep_alive else ["connection"]), answer.headers
    assert answer.one("x-model-version") == STABLE
    assert float(answer.one("x-response-time-ms")) >= 0
    assert int(answer.one("content-length")) == len(answer.body)
    assert answer.one("content-type") == "application/json"
    assert answer.one("server") == "uvicorn"
    assert_date_is_now(answer)
    if not keep_alive:
        assert answer.one("connection") == "close"


@pytest.fixture(scope="module")
def served_gateway(gw: Proc, revision: str, fakes: dict[str, Proc]) -> Served:
    return Served("gateway", gw, revision=revision, fakes=fakes)


@pytest.fixture(scope="module")
def served_replica(replica_proc: Proc) -> Served:
    return Served("replica", replica_proc)


@pytest.fixture(params=["gateway", "replica"])
def server(request: pytest.FixtureRequest) -> Served:
    served: Served = request.getfixturevalue(f"served_{request.param}")
    return served


# --- 1. keep-alive --------------------------------------------------------------------------


def test_keep_alive_many_requests_on_one_connection(server: Served) -> None:
    with Wire(server.address) as wire:
        for i in range(6):
            path = "/predict/batch" if i % 2 else "/predict"
            wire.send(server.request(10 * i, path))
            server.check(wire.read(), 10 * i, path)
        # ASGI requests and short-cut ones take turns on the same connection.
        wire.send(request("/health", None, method="GET"))
        server.check_health(wire.read())
        wire.send(server.request(7, "/predict?via=asgi"))
        server.check(wire.read(), 7, "/predict?via=asgi")
        wire.send(server.request(8))
        server.check(wire.read(), 8)
        assert wire.is_open()


def test_keep_alive_without_a_request_id(gw: Proc, revision: str) -> None:
    with Wire(gw.address) as wire:
        wire.send(request())  # no X-Request-Id: the gateway makes one
        assert_prediction(wire.read(), revision)
        assert wire.is_open()


def test_keep_alive_timeout_counts_from_the_last_answer(gw: Proc, revision: str) -> None:
    """uvicorn's 5 s idle timeout: an idle connection is closed, a busy one is not, and a busy
    one is closed 5 s after its last answer, even when the timer came due mid-request."""
    with Wire(gw.address) as idle, Wire(gw.address) as busy:
        start = time.monotonic()
        for wire in (idle, busy):
            wire.send(request())
            assert_prediction(wire.read(), revision)

        def at(seconds: float) -> None:
            time.sleep(max(0.0, start + seconds - time.monotonic()))

        at(3.0)
        assert busy.is_open()
        busy.send(request())
        assert_prediction(busy.read(), revision)
        at(KEEP_ALIVE_S - 0.6)
        assert idle.is_open()  # idle for less than the timeout: still held
        # In flight from 4.4 s to 5.2 s, across the moment its first answer's timeout is due.
        busy.send(request(headers=[("X-Slow", "0.8")]))
        assert_prediction(busy.read(), revision)
        last_answer = time.monotonic() - start
        at(6.0)
        assert idle.closed_by_gateway(within=0.5)  # idle since 0 s: closed at about 5 s
        assert busy.is_open()  # its first answer was over 5 s ago, its last is not
        at(last_answer + KEEP_ALIVE_S - 0.6)
        assert busy.is_open()
        assert busy.closed_by_gateway(within=2.0)  # 5 s after its last answer
    assert_clean_log(gw)


# --- 2. pipelining --------------------------------------------------------------------------


def test_pipelined_requests_are_answered_in_order(gw: Proc, revision: str) -> None:
    batch = b'{"customers": [{"tenure": 1}, {"tenure": 2}]}'
    with Wire(gw.address) as wire:
        wire.send(
            # The first is slow at the replica: the later ones must still wait for it.
            request("/predict", CUSTOMER, [("X-Request-Id", "pipe-1"), ("X-Slow", "0.4")]),
            request("/health", None, [("X-Request-Id", "pipe-2")], method="GET"),
            request("/predict/batch", batch, [("X-Request-Id", "pipe-3")]),
        )
        first, second, third = wire.read(), wire.read(), wire.read()
        assert_prediction(first, revision, request_id="pipe-1")
        assert_gateway_health(second)
        assert_prediction(third, revision, sent=batch, request_id="pipe-3", path="/predict/batch")
        wire.send(request(headers=[("X-Request-Id", "pipe-after")]))
        assert_prediction(wire.read(), revision, request_id="pipe-after")


def test_pipelined_mix_of_both_paths_keeps_order(server: Served) -> None:
    with Wire(server.address) as wire:
        wire.send(
            # ASGI (query string) and slow first (at a fake replica), then short-cut, ASGI,
            # short-cut, ASGI (chunked), short-cut (batch).
            server.request(1, "/predict?a=1", [("X-Slow", "0.4")]),
            server.request(2, "/predict", [("X-Slow", "0.2")]),
            request("/health", None, method="GET"),
            server.request(4),
            server.chunked(5),
            server.request(6, "/predict/batch"),
        )
        answers = [wire.read() for _ in range(6)]
        server.check(answers[0], 1, "/predict?a=1")
        server.check(answers[1], 2)
        server.check_health(answers[2])
        server.check(answers[3], 4)
        server.check(answers[4], 5)
        server.check(answers[5], 6, "/predict/batch")


def test_long_pipeline_is_answered_in_order(server: Served) -> None:
    count = 30
    paths = [["/predict", "/predict/batch", "/predict?q=1"][i % 3] for i in range(count)]
    with Wire(server.address) as wire:
        wire.send(*(server.request(i, path) for i, path in enumerate(paths)))
        for i, path in enumerate(paths):
            server.check(wire.read(), i, path)
        assert wire.is_open()


@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
def test_request_trickling_in_a_few_bytes_at_a_time(server: Served, path: str) -> None:
    raw = server.request(30, path)
    with Wire(server.address) as wire:
        wire.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(raw), 7):  # every part of the request split over many writes
            wire.send(raw[i : i + 7])
            time.sleep(0.002)
        server.check(wire.read(), 30, path)


def test_pipelined_request_whose_body_arrives_late(gw: Proc, revision: str) -> None:
    late = json_of_size(1500)
    second = request("/predict", late, [("X-Request-Id", "late-2")])
    cut = len(second) - 700
    with Wire(gw.address) as wire:
        first = request("/predict", CUSTOMER, [("X-Request-Id", "late-1"), ("X-Slow", "0.2")])
        wire.send(first, second[:cut])  # the second's headers and part of its body
        assert_prediction(wire.read(), revision, request_id="late-1")
        with pytest.raises(TimeoutError):  # nothing to answer until the body is whole
            wire.read(timeout=0.3)
        wire.send(second[cut:])
        assert_prediction(wire.read(), revision, sent=late, request_id="late-2")


# --- 3. closing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers", "version"),
    [
        ("/predict", [("Connection", "close")], "1.1"),
        ("/predict?x=1", [("Connection", "close")], "1.1"),
        ("/predict", [], "1.0"),
        ("/predict?x=1", [], "1.0"),
        ("/predict", [("Connection", "keep-alive")], "1.0"),
        ("/health", [("Connection", "close")], "1.1"),
        ("/health", [], "1.0"),
    ],
    ids=[
        "1.1-close",
        "1.1-close-query",
        "1.0",
        "1.0-query",
        "1.0-keep-alive-asked",
        "1.1-close-health",
        "1.0-health",
    ],
)
def test_close_requested_or_http_1_0_closes_after_the_answer(
    server: Served, path: str, headers: list[tuple[str, str]], version: str
) -> None:
    with Wire(server.address) as wire:
        if path == "/health":
            wire.send(request(path, None, headers, method="GET", version=version))
            server.check_health(wire.read(), keep_alive=False)
        else:
            wire.send(server.request(3, path, headers, version=version))
            server.check(wire.read(), 3, path, keep_alive=False)
        assert wire.closed_by_gateway(within=3.0)


def test_connection_close_in_a_pipeline_ends_it_there(server: Served) -> None:
    server.expect((1, "/predict"), (2, "/predict"))
    before = server.scored()
    with Wire(server.address) as wire:
        wire.send(
            server.request(1),
            server.request(2, headers=[("Connection", "close")]),
            server.request(3),  # after the close: never answered
        )
        server.check(wire.read(), 1)
        server.check(wire.read(), 2, keep_alive=False)
        assert wire.closed_by_gateway(within=3.0)
    assert server.scored() == before + 2


# --- 4. chunked bodies ----------------------------------------------------------------------


def test_chunked_body_is_forwarded_whole(gw: Proc, revision: str) -> None:
    body = json.dumps({"customers": [{"tenure": i, "plan": "premium"} for i in range(40)]})
    data = body.encode()
    assert len(data) < MAX_BODY
    pieces = [data[i : i + 300] for i in range(0, len(data), 300)]
    with Wire(gw.address) as wire:
        wire.send(chunked_head("/predict/batch", [("X-Request-Id", "chunked-1")]))
        for piece in pieces:  # arriving over time, in several reads
            wire.send(chunk(piece))
            time.sleep(0.02)
        wire.send(LAST_CHUNK)
        answer = wire.read()
        # Forwarded with a Content-Length (the replica saw no Transfer-Encoding).
        assert_prediction(
            answer, revision, sent=data, request_id="chunked-1", path="/predict/batch"
        )
        # And the connection goes on.
        wire.send(chunked_head() + chunk(CUSTOMER[:5]) + chunk(CUSTOMER[5:]) + LAST_CHUNK)
        assert_prediction(wire.read(), revision)


# --- 5. Expect: 100-continue ----------------------------------------------------------------


def test_expect_100_continue_gets_interim_then_answer(server: Served) -> None:
    body = server.body(40)
    expect = [("Expect", "100-continue"), *server.headers(40)]
    head = request("/predict", b"", expect, content_length=len(body))
    with Wire(server.address) as wire:
        wire.send(head)  # headers only: the body waits for the go-ahead
        interim = wire.read(timeout=3.0)
        assert interim.status == 100
        assert interim.body == b""
        wire.send(body)
        server.check(wire.read(), 40)
        wire.send(server.request(41))
        server.check(wire.read(), 41)


def test_expect_100_continue_over_the_limit_is_refused_at_once(gw: Proc) -> None:
    head = request("/predict", b"", [("Expect", "100-continue")], content_length=MAX_BODY + 1)
    with Wire(gw.address) as wire:
        wire.send(head)
        answer = wire.read(timeout=3.0)  # no 100 Continue for a body it will not take
        assert answer.status == 413
        assert answer.json()["error"] == "body_too_large"


# --- 6. body limit --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [MAX_BODY - 1, MAX_BODY])
def test_body_up_to_the_limit_is_forwarded(gw: Proc, revision: str, size: int) -> None:
    body = json_of_size(size)
    with Wire(gw.address) as wire:
        for path in ("/predict", "/predict/batch"):
            wire.send(request(path, body))
            assert_prediction(wire.read(), revision, sent=body, path=path)


def assert_too_large(answer: Answer) -> None:
    assert answer.status == 413, (answer.status, answer.body[:300])
    assert answer.one("content-type") == "application/json"
    assert int(answer.one("content-length")) == len(answer.body)
    assert answer.json() == {
        "error": "body_too_large",
        "detail": f"request body exceeds {MAX_BODY} bytes",
    }
    assert answer.all("x-model-version") == []
    answer.one("x-request-id")


def test_body_over_the_limit_gets_413(gw: Proc, revision: str) -> None:
    with Wire(gw.address) as wire:
        for size in (MAX_BODY + 1, 3 * MAX_BODY):
            wire.send(request("/predict", json_of_size(size), [("X-Request-Id", f"big-{size}")]))
            answer = wire.read()
            assert_too_large(answer)
            assert answer.one("x-request-id") == f"big-{size}"
        # The refused bodies were read off the connection: the next request is understood.
        wire.send(request(headers=[("X-Request-Id", "after-big")]))
        assert_prediction(wire.read(), revision, request_id="after-big")


def test_chunked_body_over_the_limit_gets_413(gw: Proc) -> None:
    data = json_of_size(MAX_BODY + 500)
    with Wire(gw.address) as wire:
        wire.send(chunked_head(), *(chunk(data[i : i + 500]) for i in range(0, len(data), 500)))
        wire.send(LAST_CHUNK)
        assert_too_large(wire.read())


# --- 7. query strings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "forwarded_to"),
    [
        # The query string goes to the replica too, and the path as the client spelled it.
        ("/predict?x=1", "/predict?x=1"),
        ("/predict/batch?debug=true&x=2", "/predict/batch?debug=true&x=2"),
        ("/predict?", "/predict"),
        # Other spellings of the same paths, which the short-cut leaves to the ASGI path.
        ("http://127.0.0.1/predict", "/predict"),
        ("/%70redict/batch", "/%70redict/batch"),
    ],
)
def test_query_string_is_answered_with_the_tags(
    gw: Proc, revision: str, path: str, forwarded_to: str
) -> None:
    with Wire(gw.address) as wire:
        wire.send(request(path, CUSTOMER, [("X-Request-Id", "query")]))
        answer = wire.read()
        assert_prediction(answer, revision, request_id="query", path=forwarded_to)


# --- 8. clients that go away ----------------------------------------------------------------


def test_client_disconnects_do_not_hurt_the_gateway(
    gw: Proc, revision: str, fakes: dict[str, Proc]
) -> None:
    slow = [("X-Slow", "0.8")]
    abandoned = [
        request("/predict", CUSTOMER, slow),  # short-cut, in flight at the replica
        request("/predict?x=1", CUSTOMER, slow),  # ASGI, in flight at the replica
        request("/predict", CUSTOMER, slow) + request(),  # a second one queued behind it
        request("/predict", json_of_size(500))[:-300],  # gone halfway through the body
        chunked_head() + chunk(CUSTOMER[:5]),  # gone halfway through a chunked body
    ]
    wires = [Wire(gw.address) for _ in abandoned]
    posts_before = posts_seen(fakes)
    try:
        for wire, raw in zip(wires, abandoned, strict=True):
            wire.send(raw)
        # Gone once the three slow ones are in flight at the replica.
        deadline = time.monotonic() + 5
        while posts_seen(fakes) < posts_before + 3:
            assert time.monotonic() < deadline, "the slow requests never reached the replica"
            time.sleep(0.02)
        for i, wire in enumerate(wires):
            if i % 2:  # some vanish with a reset rather than a FIN
                wire.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            wire.sock.close()
    finally:
        for wire in wires:
            wire.sock.close()
    # The replica answers the abandoned requests meanwhile, 0.8 s after they reached it, so
    # within 0.8 s from here. The gateway has finished with them (answers nobody waits for, the
    # request queued behind one) when it counts none in flight, checked after the 1.0 s: nothing
    # it does with them can come after the checks below and the clean log.
    time.sleep(1.0)
    replicas = httpx.get(f"{gw.url}/routing", timeout=5).json()["replicas"]
    assert [r["inflight"] for r in replicas] == [0] * len(replicas)

    assert gw.popen is not None and gw.popen.poll() is None
    for i in range(5):
        with Wire(gw.address) as wire:
            wire.send(request(headers=[("X-Request-Id", f"after-gone-{i}")]))
            assert_prediction(wire.read(), revision, request_id=f"after-gone-{i}")
    assert httpx.get(f"{gw.url}/ready", timeout=5).status_code == 200
    assert_clean_log(gw)


# --- 9. graceful shutdown -------------------------------------------------------------------


def test_sigterm_finishes_in_flight_requests_then_exits(
    fakes: dict[str, Proc], routing_file: Path, proc_log_dir: Path
) -> None:
    gw = start_gateway("gateway-sigterm", routing_file, fakes, proc_log_dir)
    try:
        revision = httpx.get(f"{gw.url}/routing", timeout=5).json()["revision"]
        with (
            Wire(gw.address) as short_cut,
            Wire(gw.address) as asgi,
            Wire(gw.address) as queued,
            Wire(gw.address) as idle,
        ):
            idle.send(request())
            assert_prediction(idle.read(), revision)
            posts_before = posts_seen(fakes)
            slow = [("X-Slow", "1.0"), ("X-Request-Id", "in-flight")]
            short_cut.send(request("/predict", CUSTOMER, slow))
            asgi.send(request("/predict?x=1", CUSTOMER, slow))
            # One in flight and one pipelined behind it, not started when the signal comes.
            queued.send(
                request("/predict", CUSTOMER, [("X-Slow", "0.8"), ("X-Request-Id", "q-1")]),
                request("/predict/batch", CUSTOMER, [("X-Request-Id", "q-2")]),
            )
            # Until the three slow ones have reached the replica, which holds each 0.8 s or more
            # from then: the signal lands while they are in flight (asserted below as well).
            deadline = time.monotonic() + 5
            while posts_seen(fakes) < posts_before + 3:
                assert time.monotonic() < deadline, "the slow requests never reached the replica"
                time.sleep(0.02)
            assert gw.popen is not None
            gw.popen.send_signal(signal.SIGTERM)
            signalled = time.monotonic()

            # An idle keep-alive connection is closed at once; no new connection is accepted.
            # uvicorn closes its listening socket before it closes idle connections, so once
            # `idle` is closed the refusal below holds; the 0.1 s is margin only.
            assert idle.closed_by_gateway(within=2.0)
            time.sleep(0.1)
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", gw.port), timeout=2).close()

            for wire, path in ((short_cut, "/predict"), (asgi, "/predict?x=1")):
                answer = wire.read(timeout=5.0)
                assert_prediction(
                    answer, revision, request_id="in-flight", path=path, keep_alive=False
                )
                assert wire.closed_by_gateway(within=3.0)
            assert_prediction(queued.read(timeout=5.0), revision, request_id="q-1", keep_alive=None)
            last = queued.read(timeout=5.0)
            assert_prediction(
                last, revision, request_id="q-2", path="/predict/batch", keep_alive=False
            )
            assert queued.closed_by_gateway(within=3.0)
            assert time.monotonic() - signalled >= 0.5  # they were in flight, not cut short

        # uvicorn re-raises the signal once drained, so a clean stop shows as -SIGTERM.
        assert gw.popen.wait(10) in (0, -signal.SIGTERM)
        assert time.monotonic() - signalled < 10
        log = gw.log()
        assert "Application shutdown complete" in log, log[-3000:]
        assert "Finished server process" in log, log[-3000:]
        assert_clean_log(gw)
    finally:
        gw.stop()


# --- 10. methods and bodies -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/predict", None),
        ("GET", "/predict/batch", None),
        ("PUT", "/predict", CUSTOMER),
        ("DELETE", "/predict", None),
        ("GET", "/predict?x=1", None),
    ],
)
def test_other_methods_on_predict_get_405_json(
    gw: Proc, method: str, path: str, body: bytes | None
) -> None:
    with Wire(gw.address) as wire:
        wire.send(request(path, body, method=method))
        answer = wire.read()
        assert answer.status == 405, (answer.status, answer.body[:300])
        assert answer.one("content-type") == "application/json"
        assert int(answer.one("content-length")) == len(answer.body)
        assert answer.json() == {"error": "method_not_allowed", "detail": "use POST"}
        assert answer.all("x-model-version") == []
        # Still a usable connection.
        wire.send(request("/health", None, method="GET"))
        assert_gateway_health(wire.read())


@pytest.mark.parametrize("path", ["/predict", "/predict/batch", "/predict?x=1"])
def test_non_json_body_is_forwarded_and_the_replica_answer_passes(
    gw: Proc, revision: str, path: str
) -> None:
    body = b"this is \x00 not JSON \xff at all"
    with Wire(gw.address) as wire:
        wire.send(request(path, body, [("X-Request-Id", "not-json")]))
        answer = wire.read()
        assert answer.status == 422, (answer.status, answer.body[:300])
        assert answer.one("x-replica-error") == "not-json"
        assert answer.one("x-model-version") == STABLE
        assert answer.one("x-request-id") == "not-json"
        assert int(answer.one("content-length")) == len(answer.body)
        seen = answer.json()
        assert seen["detail"] == "body is not JSON"
        assert seen["body_bytes"] == len(body)
        assert seen["body_sha256"] == sha256(body)  # the bytes arrived exactly as sent
        # The replica's 4xx is the client's answer: not retried, not counted against it.
        wire.send(request(headers=[("X-Request-Id", "json-again")]))
        assert_prediction(wire.read(), revision, request_id="json-again")


# --- a replica that misbehaves --------------------------------------------------------------


@pytest.fixture(scope="module")
def gw_odd(fakes: dict[str, Proc], routing_file: Path, proc_log_dir: Path) -> Iterator[Proc]:
    """A gateway of its own: what it logs here must not show in the shared one's log."""
    proc = start_gateway("gateway-odd-replica", routing_file, fakes, proc_log_dir)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.mark.parametrize("path", ["/predict", "/predict?x=1"], ids=["short-cut", "asgi"])
@pytest.mark.parametrize("status_line", ["HTTP/1.1 099 Odd", "HTTP/1.1 000 Zero"])
def test_replica_status_below_100_is_a_bad_upstream(
    gw_odd: Proc, path: str, status_line: str
) -> None:
    """httptools parses a 3-digit status below 100; no client should get it, or get nothing."""
    with Wire(gw_odd.address, timeout=5.0) as wire:
        wire.send(request(path, CUSTOMER, [("X-Status-Line", status_line)]))
        answer = wire.read()  # not a hang (short-cut) nor a closed connection (ASGI path)
        assert answer.status == 502, (answer.status, answer.body[:300])
        assert answer.json()["error"] == "bad_upstream"
        # A good answer resets the replica's failure count: the next odd status meets the
        # same replica again, not one ejected for failing three times in a row.
        wire.send(request(path, CUSTOMER))
        assert wire.read().status == 200


# --- ambiguous framing and what a replica may send back -------------------------------------

PATHS = pytest.mark.parametrize("path", ["/predict", "/predict?x=1"], ids=["short-cut", "asgi"])


def posts_seen(fakes: dict[str, Proc]) -> int:
    """POST requests that have reached any fake replica so far."""
    return sum(httpx.get(f"{p.url}/seen", timeout=5).json()["posts"] for p in fakes.values())


def raw_request(path: str, header_lines: list[bytes], body: bytes = CUSTOMER) -> bytes:
    head = [b"POST " + path.encode() + b" HTTP/1.1", b"Host: 127.0.0.1", *header_lines]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


LENGTH = b"Content-Length: %d" % len(CUSTOMER)
AMBIGUOUS = {
    "content-length-and-chunked": [LENGTH, b"Transfer-Encoding: chunked"],
    "chunked-and-content-length": [b"Transfer-Encoding: chunked", LENGTH],
    "two-content-lengths": [LENGTH, b"Content-Length: %d" % (len(CUSTOMER) - 2)],
    "same-content-length-twice": [LENGTH, LENGTH],
    "content-length-list": [b"Content-Length: %d, %d" % (len(CUSTOMER), len(CUSTOMER))],
    "obs-fold-space": [b"X-Customer-Id: 1", b" folded", LENGTH],
    "obs-fold-tab": [b"X-Customer-Id: 1", b"\tfolded", LENGTH],
    "bare-cr-in-value": [b"X-Customer-Id: 1\rX-Model-Version: v2.4.0", LENGTH],
    "bare-lf-in-value": [b"X-Customer-Id: 1\nX-Model-Version: v2.4.0", LENGTH],
    "nul-in-value": [b"X-Customer-Id: 1\x00x", LENGTH],
    "space-before-colon": [b"Content-Length : %d" % len(CUSTOMER)],
}


@PATHS
@pytest.mark.parametrize("case", sorted(AMBIGUOUS))
def test_ambiguous_framing_gets_400_and_reaches_no_replica(
    server: Served, path: str, case: str
) -> None:
    server.expect((9, path))
    before = server.scored()
    with Wire(server.address) as wire:
        wire.send(raw_request(path, AMBIGUOUS[case]))
        answer = wire.read()
        assert answer.status == 400, (answer.status, answer.body[:300])
        assert wire.closed_by_gateway()  # nothing after it is read as a request
    assert server.scored() == before  # no model saw it
    with Wire(server.address) as wire:  # and the server serves the next client as ever
        wire.send(server.request(9, path))
        server.check(wire.read(), 9, path)
    assert server.scored() == before + 1


@PATHS
def test_replica_answer_over_the_size_limit_is_a_bad_upstream(gw_odd: Proc, path: str) -> None:
    with Wire(gw_odd.address) as wire:
        wire.send(request(path, CUSTOMER, [("X-Answer-Bytes", str(MAX_ANSWER + 1))]))
        answer = wire.read()
        assert answer.status == 502, (answer.status, answer.body[:300])
        assert answer.json()["error"] == "bad_upstream"
        assert f"over {MAX_ANSWER} bytes" in answer.json()["detail"]
        # At the limit it passes whole (and resets the replica's failure count).
        wire.send(request(path, CUSTOMER, [("X-Answer-Bytes", str(MAX_ANSWER))]))
        answer = wire.read()
        assert answer.status == 200
        assert answer.body == b"z" * MAX_ANSWER


# --- uvicorn's limit_concurrency ------------------------------------------------------------


@pytest.fixture(scope="module")
def gw_limited(fakes: dict[str, Proc], routing_file: Path, proc_log_dir: Path) -> Iterator[Proc]:
    """The gateway's protocol under plain uvicorn with ``--limit-concurrency 2``."""
    port = free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "--factory", "gateway.app:create_app",
        "--http", "gateway.server:GatewayProtocol", "--limit-concurrency", "2",
        "--no-access-log", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    env = gateway_serve("unused", routing_file, fakes).env
    proc = Proc("gateway-limited", argv, env, port).start(proc_log_dir)
    try:
        wait_for(f"{proc.url}/ready", timeout=30)
        yield proc
    finally:
        proc.stop()


def open_under_the_limit(address: str, deadline: float) -> Wire:
    """A connection that has been served: earlier connections the client closed may still
    count until the server has seen them go, so ask again on a new one until it is."""
    while True:
        wire = Wire(address).__enter__()
        wire.send(request("/health", None, method="GET"))
        if wire.read().status == 200:
            return wire
        wire.__exit__(None, None, None)
        assert time.monotonic() < deadline, "never under the limit"
        time.sleep(0.05)


@PATHS
def test_limit_concurrency_is_honoured_on_both_paths(gw_limited: Proc, path: str) -> None:
    deadline = time.monotonic() + IO_TIMEOUT
    first = open_under_the_limit(gw_limited.address, deadline)
    try:
        first.send(request(path))
        assert first.read().status == 200  # one connection: under the limit
        # A second connection while the first stays open: two is the limit.
        with Wire(gw_limited.address) as second:
            second.send(request(path))
            answer = second.read()
            assert answer.status == 503, (answer.status, answer.body[:300])
            assert b"Service Unavailable" in answer.body  # uvicorn's own answer
    finally:
        first.__exit__(None, None, None)
    # Once the other connection has gone, the same request is served again.
    again = open_under_the_limit(gw_limited.address, deadline)
    try:
        again.send(request(path))
        assert again.read().status == 200
    finally:
        again.__exit__(None, None, None)


# --- metric series ---------------------------------------------------------------------------


def metric_series(proc: Proc) -> set[str]:
    text = httpx.get(f"{proc.url}/metrics", timeout=5).text
    return {line.rpartition(" ")[0] for line in text.splitlines() if not line.startswith("#")}


@PATHS
def test_distinct_bad_pins_on_the_wire_add_no_series(gw: Proc, path: str) -> None:
    with Wire(gw.address) as wire:
        wire.send(request(path, headers=[("X-Model-Version", "junk-warm-up")]))
        assert wire.read().status == 400
        before = metric_series(gw)
        for batch in range(5):  # 500 pins, 100 pipelined at a time
            pins = [
                request(path, headers=[("X-Model-Version", f"junk-{batch}-{i}")])
                for i in range(100)
            ]
            wire.send(*pins)
            assert {wire.read().status for _ in pins} == {400}
    after = metric_series(gw)
    assert after == before
    assert not any("junk" in line for line in after)


# --- a replica hands what its route answers differently to the route, in order ---------------


def test_replica_pipeline_with_bodies_the_route_must_answer_keeps_order(
    served_replica: Served,
) -> None:
    """Bodies that do not validate are handed to FastAPI after the short-cut has read them:
    their 422s come back in their turn, between short-cut answers, on one connection."""
    server = served_replica
    bad_type = [("Content-Type", "text/plain")]
    unknown = json.dumps({**customer(2), "contract_type": "weekly"}).encode()
    server.expect((1, "/predict"), (3, "/predict/batch"), (6, "/predict"))
    before = server.scored()
    with Wire(server.address) as wire:
        wire.send(
            server.request(1),
            request("/predict", unknown, [("Content-Type", "application/json")]),
            server.request(3, "/predict/batch"),
            request("/predict", server.body(4), bad_type),
            request("/predict/batch", b'{"customers": []}', [("Content-Type", "application/json")]),
            server.request(6),
        )
        server.check(wire.read(), 1)
        answer = wire.read()
        assert answer.status == 422
        assert answer.json()["detail"][0]["loc"] == ["body", "contract_type"]
        server.check(wire.read(), 3, "/predict/batch")
        assert wire.read().status == 422
        assert wire.read().status == 422
        server.check(wire.read(), 6)
        assert wire.is_open()
    assert server.scored() == before + 3
