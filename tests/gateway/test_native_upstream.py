"""NativeUpstream against raw local servers that write exact HTTP bytes, one edge case each."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from gateway.errors import BadRequest, UpstreamFailure
from gateway.upstream import NativeUpstream
from gateway.wire import Message

WAIT_S = 5.0  # the bound on any one wait in these tests

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


@dataclass
class Request:
    raw: bytes  # head and body exactly as they arrived
    line: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass
class Peer:
    """The server's side of one accepted connection."""

    number: int  # 1 for the first connection accepted, and so on
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    replica: Replica
    requests: list[Request] = field(default_factory=list)
    saw_eof: bool = False

    async def read_request(self) -> Request | None:
        """The next request on this connection, or None once the client has closed it."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            self.saw_eof = True
            return None
        line, *rest = head[:-4].split(b"\r\n")
        headers = [tuple(item.split(b": ", 1)) for item in rest]
        length = int(dict(headers).get(b"content-length", b"0"))  # type: ignore[arg-type]
        body = await self.reader.readexactly(length)
        request = Request(head + body, line, headers, body)  # type: ignore[arg-type]
        self.requests.append(request)
        self.replica.requests.append(request)
        return request

    async def send(self, *pieces: bytes, pause: float = 0.0) -> None:
        """Each piece written and flushed on its own, ``pause`` seconds apart."""
        for index, piece in enumerate(pieces):
            if index and pause:
                await asyncio.sleep(pause)
            self.writer.write(piece)
            await self.writer.drain()

    async def wait_eof(self) -> None:
        """Until the client closes this connection (any further bytes are dropped)."""
        while await self.reader.read(65536):
            pass
        self.saw_eof = True


Handler = Callable[[Peer], Awaitable[None]]
Serve = Callable[[Handler], Awaitable["Replica"]]
MakeUpstream = Callable[..., NativeUpstream]


class Replica:
    """A server on 127.0.0.1 that hands each accepted connection to ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.accepts = 0
        self.open = 0
        self.max_open = 0
        self.peers: list[Peer] = []
        self.requests: list[Request] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> Replica:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def url(self, path: str = "/predict") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)  # type: ignore[arg-type]
        self.accepts += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        peer = Peer(self.accepts, reader, writer, self)
        self.peers.append(peer)
        try:
            await self.handler(peer)
        except ConnectionError:
            pass
        finally:
            self.open -= 1
            writer.close()
            self.tasks.discard(task)  # type: ignore[arg-type]

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), WAIT_S)
        await asyncio.wait_for(self.server.wait_closed(), WAIT_S)


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    started: list[Replica] = []

    async def start(handler: Handler) -> Replica:
        replica = await Replica(handler).start()
        started.append(replica)
        return replica

    yield start
    for replica in started:
        await replica.close()


@pytest.fixture
async def upstreams() -> AsyncIterator[MakeUpstream]:
    made: list[NativeUpstream] = []

    def make(
        connect_timeout: float = 1.0,
        read_timeout: float = 2.0,
        pool_size: int = 4,
        max_body_bytes: int = 1024 * 1024,
    ) -> NativeUpstream:
        upstream = NativeUpstream(
            connect_timeout, read_timeout, pool_size, max_body_bytes=max_body_bytes
        )
        made.append(upstream)
        return upstream

    yield make
    for upstream in made:
        await upstream.aclose()


async def post(
    upstream: NativeUpstream,
    url: str,
    body: bytes = b"{}",
    headers: list[tuple[bytes, bytes]] | None = None,
    timeout: float = WAIT_S,
) -> Message:
    return await asyncio.wait_for(upstream.post(url, body, headers or [], timeout), WAIT_S + 1)


async def failure(upstream: NativeUpstream, url: str, **kwargs: object) -> UpstreamFailure:
    with pytest.raises(UpstreamFailure) as caught:
        await post(upstream, url, **kwargs)  # type: ignore[arg-type]
    return caught.value


async def until(condition: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), WAIT_S)


async def answer_each(peer: Peer) -> None:
    while await peer.read_request() is not None:
        await peer.send(OK)


# --- answers and their framing ---


async def test_content_length_answer(serve: Serve, upstreams: MakeUpstream) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
            b"X-Model-Version: v2.3.1\r\nContent-Length: 12\r\n\r\n",
            b'{"ok": true}',
            pause=0.01,
        )
        await peer.wait_eof()

    replica = await serve(handler)
    response = await post(upstreams(), replica.url())
    assert response.status == 201
    # Names come lower-cased from every client, so the proxy compares them without lower().
    assert response.headers == [
        (b"content-type", b"application/json"),
        (b"x-model-version", b"v2.3.1"),
        (b"content-length", b"12"),
    ]
    assert response.body == b'{"ok": true}'


async def test_interim_answers_are_skipped(serve: Serve, upstreams: MakeUpstream) -> None:
    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(
                b"HTTP/1.1 100 Continue\r\n\r\n",
                b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                pause=0.01,
            )

    replica = await serve(handler)
    upstream = upstreams()
    for _ in range(2):  # and the connection stays usable
        response = await post(upstream, replica.url())
        assert (response.status, response.body) == (200, b"ok")
        assert response.headers == [(b"content-length", b"2")]
    assert replica.accepts == 1


async def test_chunked_answer_split_across_reads(serve: Serve, upstreams: MakeUpstream) -> None:
    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chu",
                b"nked\r\ncontent-type: text/plain\r\n\r\n5\r\nhel",
                b"lo\r\n6\r\n world\r\n",
                b"0\r\n\r\n",
                pause=0.01,
            )

    replica = await serve(handler)
    upstream = upstreams()
    for _ in range(2):
        response = await post(upstream, replica.url())
        assert response.status == 200
        assert response.headers == [
            (b"transfer-encoding", b"chunked"),
            (b"content-type", b"text/plain"),
        ]
        assert response.body == b"hello world"
    assert replica.accepts == 1  # the terminating chunk ended the answer; the connection stays


async def test_answer_without_length_ends_at_close(serve: Serve, upstreams: MakeUpstream) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of ", b"it", pause=0.01
        )

    replica = await serve(handler)
    upstream = upstreams()
    for _ in range(2):
        response = await post(upstream, replica.url())
        assert (response.status, response.body) == (200, b"all of it")
    assert replica.accepts == 2  # a closed connection is never reused


async def test_server_error_is_a_response_not_a_failure(
    serve: Serve, upstreams: MakeUpstream
) -> None:
    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(
                b'HTTP/1.1 500 Internal Server Error\r\ncontent-length: 7\r\n\r\n{"e":1}'
            )

    replica = await serve(handler)
    upstream = upstreams()
    response = await post(upstream, replica.url())
    assert (response.status, response.body) == (500, b'{"e":1}')
    await post(upstream, replica.url())
    assert replica.accepts == 1  # a keep-alive 500 leaves the connection usable


# --- what the replica receives ---


async def test_request_bytes_as_sent(serve: Serve, upstreams: MakeUpstream) -> None:
    replica = await serve(answer_each)
    body = b'{"tenure": 14}'
    headers = [(b"content-type", b"application/json"), (b"x-request-id", b"abc-123")]
    await post(upstreams(), replica.url("/predict/batch?explain=1"), body, headers)
    (request,) = replica.requests
    assert request.line == b"POST /predict/batch?explain=1 HTTP/1.1"
    assert request.raw == (
        b"POST /predict/batch?explain=1 HTTP/1.1\r\n"
        + f"host: 127.0.0.1:{replica.port}\r\n".encode()
        + b"content-type: application/json\r\n"
        b"x-request-id: abc-123\r\n"
        b"content-length: 14\r\n"
        b"\r\n" + body
    )


async def test_empty_body_is_sent_with_zero_length(serve: Serve, upstreams: MakeUpstream) -> None:
    replica = await serve(answer_each)
    await post(upstreams(), f"http://127.0.0.1:{replica.port}", b"")
    (request,) = replica.requests
    assert request.line == b"POST / HTTP/1.1"
    assert (b"content-length", b"0") in request.headers
    assert request.body == b""


async def test_large_body_arrives_whole(serve: Serve, upstreams: MakeUpstream) -> None:
    async def handler(peer: Peer) -> None:
        while (request := await peer.read_request()) is not None:
            digest = hashlib.sha256(request.body).hexdigest().encode()
            await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 64\r\n\r\n" + digest)

    replica = await serve(handler)
    body = bytes(range(256)) * (8 * 1024)  # 2 MiB
    response = await post(upstreams(), replica.url(), body)
    assert response.body == hashlib.sha256(body).hexdigest().encode()
    assert replica.requests[0].body == body


async def test_read_timeout_waits_for_a_slow_reader_to_take_the_body(
    serve: Serve, upstreams: MakeUpstream
) -> None:
    # The replica reads nothing for longer than the read timeout: the body is still going out,
    # so the replica is not late yet.
    async def handler(peer: Peer) -> None:
        await asyncio.sleep(0.6)
        await answer_each(peer)

    replica = await serve(handler)
    body = b"x" * (32 * 1024 * 1024)  # more than the socket buffers hold
    response = await post(upstreams(read_timeout=0.3), replica.url(), body)
    assert response.status == 200
    assert len(replica.requests[0].body) == len(body)


# --- connections: reuse, close, pool limit ---


async def test_keep_alive_reuses_one_connection(serve: Serve, upstreams: MakeUpstream) -> None:
    replica = await serve(answer_each)
    upstream = upstreams()
    for _ in range(3):
        assert (await post(upstream, replica.url())).status == 200
    assert replica.accepts == 1
    assert len(replica.peers[0].requests) == 3


async def test_connection_close_answer_is_not_reused(serve: Serve, upstreams: MakeUpstream) -> None:
    async def handler(peer: Peer) -> None:
        # Says close but keeps its side open: only the client's own choice stops the reuse.
        while await peer.read_request() is not None:
            await peer.send(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}")

    replica = await serve(handler)
    upstream = upstreams()
    await post(upstream, replica.url())
    await post(upstream, replica.url())
    assert replica.accepts == 2
    assert [len(peer.requests) for peer in replica.peers] == [1, 1]
    await until(lambda: replica.peers[0].saw_eof)  # the client closed the first connection


async def test_idle_connection_closed_by_replica_is_not_reused(
    serve: Serve, upstreams: MakeUpstream
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(OK)  # keep-alive by default, then closes without saying so

    replica = await serve(handler)
    upstream = upstreams()
    await post(upstream, replica.url())
    # Until the client has seen the close while the connection idles. Without this wait the test
    # could pass on a reuse: the request would fail on the closed connection before any answer
    # byte and be retried on a new one, with the same two accepts.
    idle = upstream.idle[("127.0.0.1", replica.port, False)]
    await until(lambda: len(idle) == 1 and idle[0].closed)
    response = await post(upstream, replica.url())
    assert response.status == 200
    assert replica.accepts == 2


async def test_reused_connection_dropped_before_any_answer_byte_is_retried(
    serve: Serve, upstreams: MakeUpstream
) -> None:
    # The replica closes a kept-alive connection just as the next request arrives on it (what a
    # keep-alive timeout racing a new request looks like): nothing of the request was handled.
    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            if peer.number == 1 and len(peer.requests) == 2:
                return
            await peer.send(OK)

    replica = await serve(handler)
    upstream = upstreams()
    await post(upstream, replica.url())
    response = await post(upstream, replica.url(), b'{"second": 1}')
    assert response.status == 200
    assert replica.accepts == 2
    assert [len(peer.requests) for peer in replica.peers] == [2, 1]
    assert replica.requests[-1].body == b'{"second": 1}'
    await post(upstream, replica.url())
    assert replica.accepts == 2  # the retry's connection is kept


async def test_retry_happens_once(serve: Serve, upstreams: MakeUpstream) -> None:
    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            if len(peer.replica.requests) >= 2:
                return  # every request after the first is dropped unanswered
            await peer.send(OK)

    replica = await serve(handler)
    upstream = upstreams()
    await post(upstream, replica.url())
    assert (await failure(upstream, replica.url())).cause == "protocol_error"
    assert replica.accepts == 2
    assert len(replica.requests) == 3


async def test_no_retry_once_the_answer_has_begun(serve: Serve, upstreams: MakeUpstream) -> None:
    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            if len(peer.requests) == 2:
                await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nab")
                return
            await peer.send(OK)

    replica = await serve(handler)
    upstream = upstreams()
    await post(upstream, replica.url())
    assert (await failure(upstream, replica.url())).cause == "protocol_error"
    assert replica.accepts == 1


async def test_no_retry_on_a_new_connection(serve: Serve, upstreams: MakeUpstream) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()  # and close, unanswered

    replica = await serve(handler)
    assert (await failure(upstreams(), replica.url())).cause == "protocol_error"
    assert replica.accepts == 1


async def test_pool_limit_bounds_connections(serve: Serve, upstreams: MakeUpstream) -> None:
    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await asyncio.sleep(0.2)
            await peer.send(OK)

    replica = await serve(handler)
    upstream = upstreams(pool_size=2)
    started = time.monotonic()
    responses = await asyncio.wait_for(
        asyncio.gather(*(post(upstream, replica.url()) for _ in range(5))), WAIT_S
    )
    assert [response.status for response in responses] == [200] * 5
    assert replica.max_open <= 2
    assert replica.accepts == 2
    assert len(replica.requests) == 5
    assert time.monotonic() - started >= 0.6 - 0.05  # two at a time: three rounds at least


async def test_waiting_for_room_in_the_pool_counts_against_the_budget(
    serve: Serve, upstreams: MakeUpstream
) -> None:
    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await asyncio.sleep(0.5)
            await peer.send(OK)

    replica = await serve(handler)
    upstream = upstreams(pool_size=1)
    first = asyncio.ensure_future(post(upstream, replica.url()))
    await until(lambda: len(replica.requests) == 1)
    started = time.monotonic()
    assert (await failure(upstream, replica.url(), timeout=0.1)).cause == "timeout"
    assert time.monotonic() - started < 0.4
    assert (await asyncio.wait_for(first, WAIT_S)).status == 200
    assert replica.accepts == 1


# --- failures ---


async def test_refused_connection_is_a_connect_error(upstreams: MakeUpstream) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    upstream = upstreams(pool_size=1)
    for _ in range(2):  # a failed connect gives its place in the pool back
        caught = await failure(upstream, f"http://127.0.0.1:{port}/predict")
        assert caught.cause == "connect_error"


async def test_silent_replica_times_out_and_its_connection_is_dropped(
    serve: Serve, upstreams: MakeUpstream
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        if peer.number == 1:
            await peer.wait_eof()  # never answers
        else:
            await peer.send(OK)
            await peer.wait_eof()

    replica = await serve(handler)
    upstream = upstreams(read_timeout=0.3)
    started = time.monotonic()
    assert (await failure(upstream, replica.url())).cause == "timeout"
    elapsed = time.monotonic() - started
    assert 0.3 - 0.02 <= elapsed < 0.3 + 0.5
    await until(lambda: replica.peers[0].saw_eof)
    assert (await post(upstream, replica.url())).status == 200
    assert replica.accepts == 2


async def test_whole_budget_bounds_a_slow_trickle(serve: Serve, upstreams: MakeUpstream) -> None:
    # Each byte comes in well within the read timeout, but the answer as a whole is too late.
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
        for _ in range(100):
            await asyncio.sleep(0.05)
            await peer.send(b"x")

    replica = await serve(handler)
    started = time.monotonic()
    caught = await failure(upstreams(read_timeout=0.2), replica.url(), timeout=0.5)
    assert caught.cause == "timeout"
    assert time.monotonic() - started < 0.5 + 0.5


@pytest.mark.parametrize(
    "partial",
    [
        b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"half":',
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n10\r\nhalf",
        b"HTTP/1.1 200 OK\r\ncontent-le",
    ],
    ids=["content-length", "chunked", "headers"],
)
async def test_close_mid_answer_is_a_protocol_error(
    serve: Serve, upstreams: MakeUpstream, partial: bytes
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(partial)

    replica = await serve(handler)
    assert (await failure(upstreams(), replica.url())).cause == "protocol_error"


@pytest.mark.parametrize(
    "garbage",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: nope\r\n\r\n",
        b"\x00\xff\x00\xff\r\n\r\n",
    ],
    ids=["not-http", "bad-status", "bad-length", "binary"],
)
async def test_garbage_is_a_protocol_error(
    serve: Serve, upstreams: MakeUpstream, garbage: bytes
) -> None:
    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(garbage)
        await peer.wait_eof()  # the client must give up on its own, not wait for a close

    replica = await serve(handler)
    upstream = upstreams()
    started = time.monotonic()
    assert (await failure(upstream, replica.url())).cause == "protocol_error"
    assert time.monotonic() - started < 1.0
    await until(lambda: replica.peers[0].saw_eof)


async def test_unsupported_url_is_a_connect_error(upstreams: MakeUpstream) -> None:
    assert (await failure(upstreams(), "ftp://127.0.0.1:21/x")).cause == "connect_error"


# --- shutdown ---


async def test_aclose_closes_idle_and_busy_connections(
    serve: Serve, upstreams: MakeUpstream
) -> None:
    release = asyncio.Event()

    async def held(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await release.wait()
            await peer.send(OK)

    async def silent(peer: Peer) -> None:
        await peer.read_request()
        await peer.wait_eof()

    answering = await serve(held)
    stuck = await serve(silent)
    upstream = upstreams(pool_size=3)
    pair = asyncio.gather(post(upstream, answering.url()), post(upstream, answering.url()))
    await until(lambda: len(answering.requests) == 2)
    release.set()
    await asyncio.wait_for(pair, WAIT_S)  # two idle connections now
    busy = asyncio.ensure_future(post(upstream, stuck.url()))
    await until(lambda: len(stuck.requests) == 1)  # and one in flight

    await asyncio.wait_for(upstream.aclose(), WAIT_S)
    with pytest.raises(UpstreamFailure) as caught:
        await asyncio.wait_for(busy, WAIT_S)
    assert caught.value.cause == "protocol_error"
    await until(lambda: answering.open == 0 and stuck.open == 0)
    assert answering.accepts == 2
    assert all(peer.saw_eof for peer in answering.peers + stuck.peers)


async def test_connect_timeout_is_a_timeout(upstreams: MakeUpstream) -> None:
    # A listener whose accept queue is full drops further SYNs: connecting hangs, on loopback.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        await asyncio.sleep(0.1)
        started = time.monotonic()
        caught = await failure(upstreams(connect_timeout=0.3), f"http://127.0.0.1:{port}/predict")
        assert caught.cause == "timeout"
        assert "connect timeout" in caught.detail
        assert time.monotonic() - started < 1.5
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


# --- what is written is checked, what is read is bounded ---


@pytest.mark.parametrize(
    ("header", "shown"),
    [
        ((b"x-a", b"1\r\nx-injected: 1"), "CR"),
        ((b"x-a", b"1\nx-injected: 1"), "LF"),
        ((b"x-a", b"1\rx"), "CR"),
        ((b"x-a", b"1\0x"), "NUL"),
        ((b"x-a\r\nx-b", b"1"), "CR"),
        ((b"x-a\0", b"1"), "NUL"),
    ],
)
async def test_cr_lf_nul_in_a_header_is_refused_and_nothing_is_sent(
    serve: Serve, upstreams: MakeUpstream, header: tuple[bytes, bytes], shown: str
) -> None:
    replica = await serve(answer_each)
    upstream = upstreams()
    headers = [(b"x-request-id", b"abc"), header]
    with pytest.raises(BadRequest) as caught:
        await post(upstream, replica.url(), headers=headers)
    assert caught.value.status == 400
    assert shown in caught.value.detail and "nothing was sent" in caught.value.detail
    assert "x-a" in caught.value.detail  # names the header
    # The client itself is fine: the next request goes out, and nothing went before it.
    assert (await post(upstream, replica.url(), headers=[(b"x-a", b"ok")])).status == 200
    assert_only_this_one_reached(replica, (b"x-a", b"ok"))


def assert_only_this_one_reached(replica: Replica, header: tuple[bytes, bytes]) -> None:
    """The request just answered, carrying ``header``, is the only one the replica ever saw, on
    the only connection it accepted: proof without a wait that a request refused before it sent
    nothing. A connection the refused one had opened would have been accepted before this one
    (a listener's accept queue is in order); at most this request reused it, and then the refused
    one had written nothing on it."""
    assert replica.accepts == 1
    assert [header in request.headers for request in replica.requests] == [True]


@pytest.mark.parametrize("target", ["/predict?a=1\r\nx-injected: 1", "/predict?a=\0", "/p q"])
async def test_cr_lf_nul_or_space_in_the_target_is_refused(
    serve: Serve, upstreams: MakeUpstream, target: str
) -> None:
    replica = await serve(answer_each)
    upstream = upstreams()
    with pytest.raises(BadRequest):
        await post(upstream, replica.url(target))
    assert (await post(upstream, replica.url(), headers=[(b"x-a", b"ok")])).status == 200
    assert_only_this_one_reached(replica, (b"x-a", b"ok"))


def too_large_answers() -> dict[str, bytes]:
    body = b"x" * 2000
    return {
        "content-length": b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + body,
        "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 100]), body[i : i + 100])
            for i in range(0, 2000, 100)
        )
        + b"0\r\n\r\n",
        "until-close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body,
    }


@pytest.mark.parametrize("framing", sorted(too_large_answers()))
async def test_answer_body_over_the_limit_is_a_protocol_error_and_closes(
    serve: Serve, upstreams: MakeUpstream, framing: str
) -> None:
    answer = too_large_answers()[framing]

    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(answer[:100], answer[100:], pause=0.01)
            if framing == "until-close":
                return
        # Reached only once the gateway closes the connection.

    replica = await serve(handler)
    upstream = upstreams(max_body_bytes=1000)
    failed = await failure(upstream, replica.url())
    assert failed.cause == "protocol_error"
    assert "over 1000 bytes" in failed.detail
    await until(lambda: replica.open == 0)  # the connection was closed, not kept
    assert upstream.idle.get(("127.0.0.1", replica.port, False), []) == []


async def test_answer_body_at_the_limit_arrives_whole(
    serve: Serve, upstreams: MakeUpstream
) -> None:
    async def handler(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"y" * 1000)

    replica = await serve(handler)
    upstream = upstreams(max_body_bytes=1000)
    for _ in range(2):  # the count starts again for each answer
        response = await post(upstream, replica.url())
        assert response.body == b"y" * 1000
    assert replica.accepts == 1
