"""Slow and abusive clients against a real gateway (``python -m gateway serve``) on raw sockets.

Half-sent request heads, stalled and trickled bodies, and more connections than the cap: each
is answered 408 (or 503 at the cap) and closed in time, normal requests keep being served
meanwhile, and the gateway's file descriptors go back to where they were (gateway/client_limits.py,
httpserver/). Timeouts here are 1 s so the whole module stays within about half a minute.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvloop

from tests.integration.fake_replicas import Proc, running_fakes
from tests.integration.procs import free_port, routing_yaml, wait_for

VERSIONS = {"v2.3.1": ["fake-a"], "v2.4.0": ["fake-b"]}
TIMEOUT_S = 1.0  # GATEWAY_HEADER_TIMEOUT_S and GATEWAY_BODY_TIMEOUT_S of the gateways here
MIN_RATE = 100.0  # GATEWAY_BODY_MIN_RATE: low enough that a trickle test stays short
SLACK_S = 1.0  # how much later than its deadline a connection may be answered and closed (the
# issue's bound). Measured with two busy loops beside the suite on the two cores: at most 0.11 s
# late for 2,200 at once, where a client that timed its closes from coroutines saw up to 1.19 s.
HALF_OPEN = 2000  # connections that send half a request head and then nothing
STALLED = 200  # connections that send a head and part of the body, then nothing
CAP = 24  # GATEWAY_MAX_CONNECTIONS of the capped gateway
MAX_HEAD = 16384  # GATEWAY_MAX_HEAD_BYTES
CUSTOMER = b'{"tenure": 12, "monthly_charges": 70.5}'
T = TypeVar("T")
HALF_HEAD = b"POST /predict HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Le"


def predict(body: bytes = CUSTOMER, path: bytes = b"/predict") -> bytes:
    head = b"POST %s HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n" % path
    return head + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


# --- processes ------------------------------------------------------------------------------


def start_gateway(name: str, routing: Path, fakes: dict[str, Proc], log_dir: Path, **env: str):
    port = free_port()
    argv = [
        sys.executable, "-m", "gateway", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    settings = {
        "GATEWAY_ROUTING_FILE": str(routing),
        "GATEWAY_RESOLVE": json.dumps({f"{n}:8000": p.address for n, p in fakes.items()}),
        "GATEWAY_HEALTH_INTERVAL_S": "0.5",
        "GATEWAY_HEADER_TIMEOUT_S": str(TIMEOUT_S),
        "GATEWAY_BODY_TIMEOUT_S": str(TIMEOUT_S),
        "GATEWAY_BODY_MIN_RATE": str(MIN_RATE),
        "GATEWAY_MAX_HEAD_BYTES": str(MAX_HEAD),
        "GATEWAY_SEND_TIMEOUT_S": str(TIMEOUT_S),
        **env,
    }
    proc = Proc(name, argv, settings, port).start(log_dir)
    try:
        wait_for(f"{proc.url}/ready", timeout=30)
    except BaseException:
        proc.stop()
        raise
    return proc


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("slow-client-logs")


@pytest.fixture(scope="module")
def fakes(log_dir: Path) -> Iterator[dict[str, Proc]]:
    with running_fakes(VERSIONS, log_dir) as started:
        yield started


@pytest.fixture(scope="module")
def routing_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("slow-client-routing") / "routing.yaml"
    path.write_text(routing_yaml(VERSIONS, weights={"v2.3.1": 100, "v2.4.0": 0}))
    return path


@pytest.fixture(scope="module")
def gw(fakes: dict[str, Proc], routing_file: Path, log_dir: Path) -> Iterator[Proc]:
    proc = start_gateway("gateway", routing_file, fakes, log_dir)
    try:
        yield proc
    finally:
        proc.stop()


def open_fds(proc: Proc) -> int:
    assert proc.popen is not None
    return len(os.listdir(f"/proc/{proc.popen.pid}/fd"))


def timeouts(proc: Proc, phase: str) -> float:
    return metric(proc, f'gateway_client_timeouts_total{{phase="{phase}"}}')


def metric(proc: Proc, name: str) -> float:
    for line in httpx.get(f"{proc.url}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


# --- a blocking client: the normal traffic ---------------------------------------------------


class Client:
    """One keep-alive connection sending whole requests and reading whole answers."""

    def __init__(self, address: str) -> None:
        host, port = address.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the gateway")
        self.buffer += data

    def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        self.buffer = rest
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(lines[0].split()[1]), body


def timed_predictions(address: str, stop: threading.Event, count: int | None = None) -> list:
    """(status, seconds) of sequential predictions, until ``stop`` is set or ``count`` done."""
    client = Client(address)
    results = []
    try:
        while not stop.is_set() and (count is None or len(results) < count):
            start = time.perf_counter()
            status, _ = client.exchange(predict())
            results.append((status, time.perf_counter() - start))
    finally:
        client.close()
    return results


def normal_traffic(address: str, ready: Any, stop: Any, results: Any) -> None:
    """In a process of its own, so the abusive clients of the test process (and its GIL) do not
    delay it: 300 predictions on an idle gateway, then as many as fit until ``stop``."""
    idle = timed_predictions(address, threading.Event(), count=300)
    ready.set()
    during = timed_predictions(address, stop)
    results.put((idle, during))


def p99(results: list) -> float:
    return statistics.quantiles([seconds for _, seconds in results], n=100)[98]


# --- the abusive clients --------------------------------------------------------------------


async def abuse(address: str, first: bytes, *, hold_s: float) -> tuple[bytes, float]:
    """Connect, send ``first`` and nothing more; (all the gateway sent, seconds from the last
    byte sent until the gateway closed), or (b"", inf) if it still held on after ``hold_s``."""
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(first)
        await writer.drain()
        sent = time.monotonic()
        try:
            data = await asyncio.wait_for(reader.read(), hold_s)
        except TimeoutError:
            return b"", float("inf")
        except ConnectionResetError:
            data = b""
        return data, time.monotonic() - sent
    finally:
        writer.close()


class Abuser(asyncio.Protocol):
    """Sends ``first`` on connect and nothing more; notes when the gateway first answered or
    closed, at the moment the event arrives (a callback, not a coroutine that resumes later:
    with 2,200 of them on a busy machine, resuming alone ran to a second)."""

    def __init__(self, first: bytes, done: asyncio.Future[tuple[bytes, float]]) -> None:
        self.first = first
        self.done = done
        self.loop = done.get_loop()
        self.data = b""
        self.sent = 0.0
        self.reached = 0.0  # loop time of the first byte or the close, whichever came first

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.first)  # type: ignore[attr-defined] - uvloop's, not asyncio's class
        self.sent = self.loop.time()

    def data_received(self, data: bytes) -> None:
        if not self.reached:
            self.reached = self.loop.time()
        self.data += data

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.reached:
            self.reached = self.loop.time()
        if not self.done.done():
            self.done.set_result((self.data, self.reached - self.sent))


async def abuse_all(address: str, requests: list[bytes], hold_s: float) -> list:
    """Each request on its own connection: (all the gateway sent, seconds from the send until
    its first answer byte or its close), or (b"", inf) if it still held on after ``hold_s``."""
    loop = asyncio.get_running_loop()
    host, port = address.split(":")
    gate = asyncio.Semaphore(256)  # connect in waves: the listen backlog is finite
    transports: list[asyncio.BaseTransport] = []

    async def connect(first: bytes) -> asyncio.Future[tuple[bytes, float]]:
        done: asyncio.Future[tuple[bytes, float]] = loop.create_future()
        async with gate:
            transport, _ = await loop.create_connection(
                lambda: Abuser(first, done), host, int(port)
            )
        transports.append(transport)
        return done

    futures = await asyncio.gather(*(connect(first) for first in requests))
    try:
        await asyncio.wait(futures, timeout=hold_s)
    finally:
        for transport in transports:
            transport.close()
    return [f.result() if f.done() else (b"", float("inf")) for f in futures]


def run_fast(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop (as the gateway does): the abusive clients' own loop must not be what
    makes a close look late."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def assert_timed_out(data: bytes, seconds: float, deadline_s: float) -> None:
    assert seconds <= deadline_s + SLACK_S, f"held {seconds:.2f} s (deadline {deadline_s} s)"
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), data[:200]
    assert b"connection: close" in head.lower()
    assert json.loads(body)["error"] == "request_timeout"


# --- tests -----------------------------------------------------------------------------------


def test_half_open_heads_and_stalled_bodies_time_out_while_normal_requests_flow(gw: Proc) -> None:
    timed_predictions(gw.address, threading.Event(), count=50)  # the replica connection exists
    baseline_fds = open_fds(gw)
    before = {phase: timeouts(gw, phase) for phase in ("idle", "head", "body")}

    spawn = multiprocessing.get_context("spawn")
    ready, stop, out = spawn.Event(), spawn.Event(), spawn.Queue()
    normal = spawn.Process(target=normal_traffic, args=(gw.address, ready, stop, out))
    normal.start()
    stalled_body = predict(b"x" * 100)[:-90]  # the head and 10 bytes of a 100-byte body
    requests = [HALF_HEAD] * HALF_OPEN + [stalled_body] * STALLED
    try:
        assert ready.wait(60), "the normal client did not start"
        started = time.monotonic()
        results = run_fast(abuse_all(gw.address, requests, hold_s=TIMEOUT_S + 5))
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        try:
            idle, during = out.get(timeout=30)
        finally:
            normal.join(30)
            if normal.is_alive():
                normal.kill()

    late = [s for _, s in results if s > TIMEOUT_S + SLACK_S]
    assert not late, f"{len(late)} of {len(results)} held past the deadline: {sorted(late)[-5:]}"
    # Closed with no answer: a connection whose bytes the gateway had not seen a whole head
    # timeout after its accept, which it rightly takes for one that sent nothing. On a loaded
    # machine this test's own client can be that late to write, now and then: each such close
    # must be one the gateway counted as idle, and every other connection gets its 408.
    silent = [seconds for data, seconds in results if data == b""]
    for data, seconds in results:
        if data:
            assert_timed_out(data, seconds, TIMEOUT_S)
    counted = {phase: timeouts(gw, phase) - before[phase] for phase in before}
    assert counted["idle"] == len(silent), (counted, len(silent))
    assert counted["head"] + counted["body"] == len(results) - len(silent), counted
    assert during and all(status == 200 for status, _ in during), {s for s, _ in during}
    # Generous: the abusive clients run on the same two cores as the gateway and this test.
    assert p99(during) <= max(5 * p99(idle), p99(idle) + 0.05), (p99(idle), p99(during))

    deadline = time.monotonic() + 5
    while open_fds(gw) > baseline_fds and time.monotonic() < deadline:
        time.sleep(0.1)
    assert open_fds(gw) <= baseline_fds, (baseline_fds, open_fds(gw))
    print(
        f"\n{HALF_OPEN} half-open + {STALLED} stalled: {len(results) - len(silent)} answered "
        f"408, {len(silent)} closed as sent-nothing, in "
        f"{min(s for _, s in results):.2f} to {max(s for _, s in results):.2f} s "
        f"({elapsed:.1f} s in all); fds {baseline_fds} before, {open_fds(gw)} after; "
        f"p99 idle {p99(idle) * 1000:.2f} ms, during {p99(during) * 1000:.2f} ms "
        f"over {len(during)} requests"
    )


def test_a_new_connection_that_sends_nothing_is_closed_after_the_head_timeout(gw: Proc) -> None:
    data, seconds = asyncio.run(abuse(gw.address, b"", hold_s=TIMEOUT_S + 5))
    assert data == b"" and seconds <= TIMEOUT_S + SLACK_S, (data, seconds)


def test_the_next_head_on_a_kept_alive_connection_is_timed_too(gw: Proc) -> None:
    client = Client(gw.address)
    try:
        assert client.exchange(predict())[0] == 200
        client.sock.sendall(HALF_HEAD)
        sent = time.monotonic()
        client.sock.settimeout(TIMEOUT_S + 5)
        data = b""
        while chunk := client.sock.recv(65536):
            data += chunk
        assert_timed_out(data, time.monotonic() - sent, TIMEOUT_S)
    finally:
        client.close()


@pytest.mark.parametrize(
    "head",
    [
        b'POST /predict HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"ten',
        b"POST /predict HTTP/1.1\r\nHost: gw\r\nExpect: 100-continue\r\nContent-Length: 50\r\n\r\n",
    ],
    ids=["chunked", "expect-100"],
)
def test_a_stalled_body_on_the_asgi_path_is_answered_408(gw: Proc, head: bytes) -> None:
    seen = httpx.get(f"{gw.url}/routing", timeout=5).json()  # noqa: F841 - gateway is up
    data, seconds = asyncio.run(abuse(gw.address, head, hold_s=TIMEOUT_S + 5))
    interim, _, rest = data.partition(b"HTTP/1.1 408 ")
    assert rest, data[:300]
    assert interim in (b"", b"HTTP/1.1 100 Continue\r\n\r\n"), interim
    assert_timed_out(b"HTTP/1.1 408 " + rest, seconds, TIMEOUT_S)


def test_a_trickled_body_is_cut_by_the_minimum_rate(gw: Proc) -> None:
    # 200 bytes at MIN_RATE must be in within TIMEOUT_S + 2 s; one byte every 0.3 s never
    # leaves a gap of TIMEOUT_S, but comes at a tenth of the rate.
    body = b"x" * 200
    client = Client(gw.address)
    try:
        client.sock.sendall(predict(body)[: -len(body)])
        start = time.monotonic()
        client.sock.settimeout(0.3)
        data = b""
        for byte in body:
            try:
                client.sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                chunk = client.sock.recv(65536)
            except TimeoutError:
                continue
            data += chunk
            if not chunk or data.count(b"\r\n\r\n"):
                break
        held = time.monotonic() - start
    finally:
        client.close()
    due = TIMEOUT_S + len(body) / MIN_RATE
    assert data.startswith(b"HTTP/1.1 408 "), data[:200]
    assert due - 0.5 <= held <= due + SLACK_S, held


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_fast_client_is_never_cut_by_the_body_timeout(gw: Proc, chunked: bool) -> None:
    # 1 MB in 64 KiB pieces 0.1 s apart: 1.6 s in all, longer than the body timeout, with no
    # gap anywhere near it.
    row = b'{"tenure": 12, "monthly_charges": 70.5, "contract_type": "month-to-month"},'
    rows = row * (1_000_000 // len(row))
    body = b'{"customers": [' + rows[:-1] + b"]}"
    if chunked:
        head = b"POST /predict/batch HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n"
        pieces = [
            b"%x\r\n%s\r\n" % (len(body[i : i + 65536]), body[i : i + 65536])
            for i in range(0, len(body), 65536)
        ] + [b"0\r\n\r\n"]
    else:
        head = predict(body, b"/predict/batch")[: -len(body)]
        pieces = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    client = Client(gw.address)
    try:
        client.sock.sendall(head)
        for piece in pieces:
            time.sleep(0.1)
            client.sock.sendall(piece)
        status, answer = client.exchange(b"")
    finally:
        client.close()
    assert status == 200, answer[:300]
    assert json.loads(answer)["body_bytes"] == len(body)


def test_connections_over_the_cap_are_refused_and_those_under_it_served(
    fakes: dict[str, Proc], routing_file: Path, log_dir: Path
) -> None:
    # A head timeout longer than this test: the held connections must stay open on their own.
    capped = start_gateway(
        "gateway-capped",
        routing_file,
        fakes,
        log_dir,
        GATEWAY_MAX_CONNECTIONS=str(CAP),
        GATEWAY_HEADER_TIMEOUT_S="30",
    )
    held: list[Client] = []
    try:
        deadline = time.monotonic() + 5  # wait_for's own connections are gone
        while metric(capped, "gateway_open_connections") > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        held = [Client(capped.address) for _ in range(CAP)]
        assert held[0].exchange(b"GET /ready HTTP/1.1\r\nHost: gw\r\n\r\n")[0] == 200

        extra = [b""] * 20
        started = time.monotonic()
        results = run_fast(abuse_all(capped.address, extra, hold_s=5))
        for data, seconds in results:
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503 "), data[:200]
            assert b"retry-after: 1" in head.lower()
            assert json.loads(body)["error"] == "too_many_connections"
            assert seconds < 1.0, seconds  # at once, not after a timeout
        assert time.monotonic() - started < 5

        for client in held:  # every connection under the cap is still served
            assert client.exchange(predict())[0] == 200
        assert held[0].exchange(b"GET /ready HTTP/1.1\r\nHost: gw\r\n\r\n")[0] == 200
        status, text = held[1].exchange(b"GET /metrics HTTP/1.1\r\nHost: gw\r\n\r\n")
        assert b"gateway_connections_refused_total 20.0" in text, text[:2000]
        assert b"gateway_open_connections %d.0" % CAP in text

        for client in held[:2]:  # room again: a new client gets in
            client.close()
        time.sleep(0.2)
        assert httpx.get(f"{capped.url}/ready", timeout=5).status_code == 200
    finally:
        for client in held:
            client.close()
        capped.stop()


def read_until_closed(sock: socket.socket, timeout_s: float) -> bytes:
    sock.settimeout(timeout_s)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def assert_head_too_large(data: bytes) -> None:
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 "), data[:200]
    assert b"connection: close" in head.lower()
    answer = json.loads(body)
    assert answer["error"] == "request_head_too_large"
    assert str(MAX_HEAD) in answer["detail"]


@pytest.mark.parametrize(
    "start",
    [b"POST /predict HTTP/1.1\r\n", b"GET /routing HTTP/1.1\r\n"],
    ids=["short-cut", "asgi"],
)
def test_a_head_over_the_cap_is_431_and_closed(gw: Proc, start: bytes) -> None:
    filler = b"X-Filler: " + b"f" * (MAX_HEAD + 100) + b"\r\n"
    end = b"Host: gw\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    client = Client(gw.address)
    try:
        client.sock.sendall(start + filler + end)  # whole, in one send
        assert_head_too_large(read_until_closed(client.sock, 5))
    finally:
        client.close()
    # Just under the cap passes, on both paths.
    client = Client(gw.address)
    try:
        under = b"X-Filler: " + b"f" * (MAX_HEAD - 400) + b"\r\n"
        status, _ = client.exchange(start + under + end)
        assert status == 200
    finally:
        client.close()


def test_a_head_that_never_ends_is_cut_at_the_cap(gw: Proc) -> None:
    client = Client(gw.address)
    sent = 0
    try:
        client.sock.sendall(b"POST /predict HTTP/1.1\r\nHost: gw\r\n")
        try:
            for i in range(200):  # 200 headers of 1 KiB: far past the cap, never finished
                client.sock.sendall(b"X-H%d: %s\r\n" % (i, b"h" * 1024))
                sent += 1024
                time.sleep(0.002)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert_head_too_large(read_until_closed(client.sock, 5))
    finally:
        client.close()
    assert sent < 200 * 1024  # cut on the way, not after the whole head
    assert metric(gw, "gateway_request_heads_too_large_total") >= 3


def rss_bytes(proc: Proc) -> int:
    assert proc.popen is not None
    for line in Path(f"/proc/{proc.popen.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_client_that_never_reads_its_answers_is_not_buffered_and_is_dropped(gw: Proc) -> None:
    # 64 pipelined requests for 1 MiB answers each, never read: without flow control the
    # gateway would hold all 64 MiB for this one client.
    answer_bytes = 1024 * 1024
    request = predict()[: -len(CUSTOMER) - 2] + b"X-Answer-Bytes: %d\r\n\r\n%s" % (
        answer_bytes,
        CUSTOMER,
    )
    timed_predictions(gw.address, threading.Event(), count=5)  # the replica connection exists
    baseline_fds, baseline_rss = open_fds(gw), rss_bytes(gw)
    dropped_before = timeouts(gw, "send")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = gw.address.split(":")
    sock.connect((host, int(port)))
    try:
        sock.sendall(request * 64)
        # The gateway fills its buffers, then waits. Its memory is read for as long as it holds
        # the client, until the send timeout drops it (TIMEOUT_S after its writes stall): a
        # gateway without flow control would be fetching answers all that time. A single
        # reading after sleeping 1.5 s came after the drop (at 1.0 s), when the buffers freed
        # (2.2 MiB while held, 0.2 MiB after) hide any growth.
        grown, samples = 0, 0
        deadline = time.monotonic() + TIMEOUT_S + 5
        while timeouts(gw, "send") == dropped_before and time.monotonic() < deadline:
            for _ in range(5):  # a few readings to each look at the counter (a request)
                grown = max(grown, rss_bytes(gw) - baseline_rss)
                samples += 1
                time.sleep(0.02)
        assert timeouts(gw, "send") == dropped_before + 1  # not read in time: dropped
        assert samples >= 10, samples  # held a while, and watched all along
        assert grown < 24 * answer_bytes, f"gateway grew by {grown / 2**20:.1f} MiB"
        # Answers unsent, the fd given back.
        deadline = time.monotonic() + TIMEOUT_S + 5
        while open_fds(gw) > baseline_fds and time.monotonic() < deadline:
            time.sleep(0.1)
        assert open_fds(gw) <= baseline_fds
        print(
            f"\nnever-reading client: gateway grew {grown / 2**20:.1f} MiB for 64 MiB asked, "
            f"at most, over {samples} readings while it held the client"
        )
    finally:
        sock.close()
