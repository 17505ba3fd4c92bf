"""The gateway's HTTP/1.1 server protocol: uvicorn's, with plain prediction requests short-cut.

uvicorn keeps everything it does well: listening, workers, keep-alive, pipelining order, graceful
shutdown, and the ASGI app (FastAPI status endpoints, lifespan). What changes is one kind of
request: a POST to /predict or /predict/batch with a Content-Length and nothing unusual. Its
headers and body go straight to ``Proxy.forward`` and the answer is written as one buffer, with
no ASGI scope, receive/send messages, event or request-cycle object. Under load that machinery
was about half of a gateway process's CPU (bench/README.md).

Anything else about a prediction request (chunked body, Expect: 100-continue, a query string, a
body over the limit, the access log on) takes the ASGI path, which answers it the same way. So
does a request over uvicorn's ``limit_concurrency`` (unset by ``gateway serve``, settable when
running uvicorn by hand), which uvicorn answers there with its 503: the gateway's own in-flight
cap is per replica and does not bound the connections and tasks of the process.

Every connection, on either path, has one timer for its deadlines (gateway/client_limits.py):
keep-alive between requests, the head timeout while a head arrives, the body timeouts while a
body does. A request late on either gets a 408 and its connection is closed; a connection over
the process's cap is answered 503 and closed before it is read. A request head over the cap
gets a 431 (counted per read while it arrives, and once whole when it came in a large read). A
client that leaves its answers unread is read no further, and none of its pipelined requests is
started, while the transport's write buffer is over its high-water mark; if it stays there for
the send timeout the connection is aborted (a close would wait for the buffer to drain).

Serve with ``uvicorn.run(..., http="gateway.server:GatewayProtocol")`` (``gateway serve`` does).
The subclass uses internals of uvicorn's protocol (the request cycle's attributes, the pipeline
queue, the keep-alive hooks), so uvicorn is pinned to an exact version in pyproject.toml;
tests/gateway/test_server_internals.py names any of those internals an upgrade removed, and
tests/integration/test_server_protocol.py checks both paths on the wire.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gateway.app import GatewayApp
from gateway.client_limits import BODY, HEAD, IDLE, SEND, ClientLimits, error_answer
from gateway.metrics import ClientTally
from gateway.proxy import Proxy
from gateway.wire import Message, head_lines

log = logging.getLogger("gateway.server")

SHORT_CUT = {b"/predict": "/predict", b"/predict/batch": "/predict/batch"}
INTERNAL_ERROR = (
    b'{"error":"internal_error","detail":"the gateway failed on this request; see its log"}'
)


class _Event:
    """uvicorn sets a cycle's message event on disconnect; a short-cut request has no reader."""

    __slots__ = ()

    def set(self) -> None:
        pass


_NO_EVENT = _Event()

# What a connection is doing, for its one timer (a request being answered has no deadline).
_IDLE = 0  # between requests: the keep-alive timeout
_AWAIT = 1  # new, nothing received yet: the head timeout, from the accept
_HEAD = 2  # a request's head is arriving
_BODY = 3  # its body is arriving
_BUSY = 4  # the whole request is in; being answered
NEVER = float("inf")

# id(server_state.default_headers) -> (that list, its bytes); shared by the process's connections.
_default_heads: dict[int, tuple[list[tuple[bytes, bytes]], bytes]] = {}
# (default head, limits, phase) -> the whole 408 answer. Connections that arrived together time
# out together (a slowloris flood: thousands in one loop turn), and each then costs one write
# and one close instead of formatting and JSON-encoding the same answer again.
_timeout_answers: dict[tuple[bytes, ClientLimits, str], bytes] = {}


class _HeadTooLarge(Exception):
    """Raised from the parser's callback to stop it."""


class _Exchange:
    """One short-cut request. Has the attributes uvicorn's protocol reads on its request cycle
    (``response_complete``, ``disconnected``, ``keep_alive``, ``message_event``), so its
    connection-lost, shutdown and pipelining code treat both kinds alike."""

    __slots__ = (
        "path",
        "headers",
        "body",
        "start",
        "keep_alive",
        "complete",
        "started",
        "response_complete",
        "disconnected",
        "message_event",
    )

    def __init__(self, path: str, headers: list[tuple[bytes, bytes]], keep_alive: bool) -> None:
        self.path = path
        self.headers = headers
        self.body: list[bytes] = []
        self.start = time.perf_counter()
        self.keep_alive = keep_alive
        self.complete = False  # the whole body has arrived
        self.started = False  # its turn has come (earlier pipelined requests are answered)
        self.response_complete = False
        self.disconnected = False
        self.message_event = _NO_EVENT


class GatewayProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn may wrap the app in middleware; the gateway app is at the bottom.
        app: Any = self.app
        while app is not None and not isinstance(app, GatewayApp):
            app = getattr(app, "app", None)
        self.gateway: GatewayApp | None = app
        self.limits: ClientLimits = app.client_limits if app is not None else ClientLimits()
        tally = app.client_tally if app is not None else None
        self.tally: ClientTally = tally if tally is not None else ClientTally()
        # One timer per connection for every deadline (keep-alive, head, body), moved lazily:
        # a phase that begins only moves it when it must fire earlier, and when it fires it
        # checks the phase's due time and re-arms if that is later. uvicorn arms a keep-alive
        # timer after every answer and cancels it on the next read, two timer operations per
        # request; here a busy connection costs about one per keep-alive period.
        self.deadline_timer: asyncio.TimerHandle | None = None
        self.timer_at = NEVER
        self.phase = _AWAIT
        self.since = 0.0  # when the phase began (for _BODY: when the head was in)
        self.last_read = 0.0  # loop time of the last read from the client
        self.body_length: int | None = 0  # declared; None when chunked
        self.counted = False  # counted in the open connections (not a refused one)
        self.head_bytes = 0  # of the head arriving, counted per read while it is incomplete
        self.check_head = False  # count the head's size when it is complete (see data_received)
        self.head_refused = False
        self.send_stalled = 0.0  # loop time the write buffer went over its high-water mark

    # --- httptools callbacks ---

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        tally = self.tally
        if tally.open >= self.limits.max_connections:
            # Refused before anything is read: the clients already here and the replica
            # connections keep their file descriptors.
            self.connections.discard(self)
            tally.refused += 1
            transport.write(self._refusal())
            transport.close()
            return
        tally.open += 1
        self.counted = True
        self.since = self.last_read = now = self.loop.time()
        self._arm(now + self.limits.header_timeout_s)

    def data_received(self, data: bytes) -> None:
        began = self.phase
        limit = self.limits.max_head_bytes
        # A head that arrives whole in one read of at most the limit is within it: only a
        # larger read, or a head continued from an earlier read, has its size counted when it
        # is complete (on_headers_complete).
        self.check_head = began == _HEAD or len(data) > limit
        # uvicorn's data_received, with the head cap: on_headers_complete stops the parser
        # with an exception (which httptools wraps in a parser error) for a head over it.
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.head_refused:
                self._head_too_large()
            else:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self.phase != _HEAD:  # the head is whole (or none began): the common case
            return
        # A head still incomplete after this read: httptools keeps its pieces until it is
        # whole, so its size is capped here, counted per read (a head that began in this read
        # counts the read whole: at most the end of an earlier pipelined request more).
        size = self.head_bytes + len(data) if began == _HEAD else len(data)
        self.head_bytes = size
        if size > limit and not self.transport.is_closing():
            self._head_too_large()

    def on_message_begin(self) -> None:
        # The ASGI scope is built in on_headers_complete, and only for requests that need one.
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        if self.phase != _AWAIT:  # a connection's first head is timed from the accept
            self.since = self.last_read
        self.phase = _HEAD
        due = self.since + self.limits.header_timeout_s
        if due < self.timer_at:
            self._arm(due)

    def on_headers_complete(self) -> None:
        if self.check_head and head_size(self.url, self.headers) > self.limits.max_head_bytes:
            self.head_refused = True
            raise _HeadTooLarge  # stops the parser; data_received answers
        self.phase = _BODY
        self.since = last_read = self.last_read
        due = last_read + self.limits.body_timeout_s  # the earliest a body can be due
        if due < self.timer_at:
            self._arm(due)
        exchange = self._short_cut()
        if exchange is None:
            self.body_length = body_length(self.headers)
            url, headers, expect = self.url, self.headers, self.expect_100_continue
            super().on_message_begin()  # builds the scope, and resets what the parser gave
            self.url, self.expect_100_continue = url, expect
            self.headers = self.scope["headers"] = headers
            super().on_headers_complete()
            return
        previous = self.cycle
        self.cycle = exchange  # type: ignore[assignment]
        if previous is None or previous.response_complete:
            exchange.started = True
        else:
            # Pipelined behind a request still being answered: queued in order with uvicorn's.
            self.flow.pause_reading()
            self.pipeline.appendleft((exchange, None))  # type: ignore[arg-type]

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if type(cycle) is _Exchange:
            cycle.body.append(body)  # bounded: the declared length was checked
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        cycle = self.cycle
        self.phase = _BUSY
        if type(cycle) is _Exchange:
            cycle.complete = True
            if cycle.started:
                self._answer(cycle)
        else:
            super().on_message_complete()
            if cycle is not None and cycle.response_complete:  # answered early (a 413, a 405)
                self._become_idle()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        # Called for a pipelined request whose turn has come.
        if type(cycle) is _Exchange:
            cycle.started = True
            if cycle.complete:
                self._answer(cycle)
        else:
            super()._start_asgi_task(cycle, app)

    def _default_head(self) -> bytes:
        """uvicorn's default headers (date, server) as bytes; it swaps the list every second."""
        headers = self.server_state.default_headers
        cached = _default_heads.get(id(headers))
        if cached is None or cached[0] is not headers:
            _default_heads.clear()
            cached = _default_heads[id(headers)] = (headers, head_lines(headers))
        return cached[1]

    # --- deadlines ---

    def _unset_keepalive_if_required(self) -> None:
        # Called on every read (and by uvicorn on connection lost): the time is noted once per
        # read, for whichever deadline the bytes read move.
        self.last_read = self.loop.time()

    def on_response_complete(self) -> None:
        # uvicorn's, with the keep-alive deadline on the connection's one timer.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        if self.flow.write_paused:
            return  # the client is not taking its answers: resume_writing goes on from here
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        if self.phase == _BUSY:  # not when the next request has begun arriving
            self._become_idle()

    def _become_idle(self) -> None:
        self.phase = _IDLE
        self.since = now = self.loop.time()
        due = now + self.timeout_keep_alive
        if due < self.timer_at:
            self._arm(due)

    def _arm(self, due: float) -> None:
        if self.deadline_timer is not None:
            self.deadline_timer.cancel()
        self.timer_at = due
        self.deadline_timer = self.loop.call_at(due, self._deadline_due)

    def _due(self) -> float:
        phase, limits = self.phase, self.limits
        if phase == _IDLE:
            return self.since + self.timeout_keep_alive
        if phase in (_AWAIT, _HEAD):
            return self.since + limits.header_timeout_s
        if phase == _BODY:
            stalled = self.last_read + limits.body_timeout_s
            return min(stalled, limits.body_due(self.since, self.body_length))
        return NEVER  # _BUSY: the replica's timeouts bound it; re-armed when a phase begins

    # --- a client that does not read its answers ---

    def pause_writing(self) -> None:
        # The transport's write buffer is over its high-water mark: read no more requests from
        # this client until it has taken its answers, and drop it if it never does.
        super().pause_writing()
        self.flow.pause_reading()
        self.send_stalled = now = self.loop.time()
        due = now + self.limits.send_timeout_s
        if due < self.timer_at:
            self._arm(due)

    def resume_writing(self) -> None:
        super().resume_writing()
        self.send_stalled = 0.0
        if self.transport.is_closing():
            return
        if self.phase != _BUSY:  # the server held this client up: its clocks start again
            self.since = self.last_read = self.loop.time()
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            # What on_response_complete left while writing was paused: reading, the next
            # pipelined request (already read), or the keep-alive wait.
            self.flow.resume_reading()
            if self.pipeline:
                cycle, app = self.pipeline.pop()
                self._start_asgi_task(cycle, app)
            elif self.phase == _BUSY:
                self._become_idle()

    def _deadline_due(self) -> None:
        self.deadline_timer = None
        self.timer_at = NEVER
        transport = self.transport
        if self.send_stalled:
            # Whatever phase the connection is in, nothing moves until the client reads.
            due = self.send_stalled + self.limits.send_timeout_s
            if self.loop.time() < due:
                self._arm(due)
                return
            self.tally.timeouts[SEND] += 1
            cycle = self.cycle
            if cycle is not None:
                cycle.disconnected = True
                cycle.message_event.set()
            transport.abort()  # close() would wait for the buffer to drain: forever
            return
        if transport.is_closing():
            return
        due = self._due()
        if due == NEVER:
            return
        now = self.loop.time()
        if now < due:
            self._arm(due)
            return
        if self.phase != _IDLE and self.flow.read_paused:
            # The server stopped reading (a pipelined request waits its turn, or a body buffer
            # is full): the client is not the slow one. Its clocks start again.
            self.since = self.last_read = now
            self._arm(self._due())
            return
        self._time_out()

    def _time_out(self) -> None:
        phase, transport, cycle = self.phase, self.transport, self.cycle
        if phase == _IDLE:
            transport.close()
            return
        if phase == _AWAIT:
            self.tally.timeouts[IDLE] += 1
            transport.close()
            return
        answer = None
        if phase == _HEAD:
            self.tally.timeouts[HEAD] += 1
            # Not when an earlier request is still being answered: its answer comes first.
            if cycle is None or cycle.response_complete:
                answer = self._timeout_answer(HEAD)
        else:
            self.tally.timeouts[BODY] += 1
            answered = cycle is None or (
                cycle.response_complete or getattr(cycle, "response_started", False)
            )
            waiting = bool(self.pipeline) or (type(cycle) is _Exchange and not cycle.started)
            if not answered and not waiting:
                answer = self._timeout_answer(BODY)
            # Whatever runs for this request sees a client gone: nothing more is written.
            if cycle is not None:
                cycle.disconnected = True
                cycle.message_event.set()
        if answer is not None:
            transport.write(answer)
        transport.close()

    def _head_too_large(self) -> None:
        self.tally.heads_too_large += 1
        cycle = self.cycle
        # Not when an earlier request is still being answered: its answer would come after.
        if cycle is None or cycle.response_complete:
            detail = f"the request head exceeds {self.limits.max_head_bytes} bytes"
            self.transport.write(
                error_answer(
                    STATUS_LINE[431],
                    self._default_head(),
                    "request_head_too_large",
                    detail,
                )
            )
        elif cycle is not None:
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()

    def _timeout_answer(self, phase: str) -> bytes:
        head, limits = self._default_head(), self.limits
        key = (head, limits, phase)
        answer = _timeout_answers.get(key)
        if answer is None:
            if phase == HEAD:
                detail = f"the request head did not arrive within {limits.header_timeout_s:g} s"
            else:
                detail = (
                    f"the request body stalled: no byte for {limits.body_timeout_s:g} s, or "
                    f"slower than {limits.body_min_rate:g} bytes a second overall"
                )
            if len(_timeout_answers) > 8:  # the date in the default head moves every second
                _timeout_answers.clear()
            answer = error_answer(STATUS_LINE[408], head, "request_timeout", detail)
            _timeout_answers[key] = answer
        return answer

    def _refusal(self) -> bytes:
        detail = f"the gateway holds its limit of {self.limits.max_connections} connections"
        return error_answer(STATUS_LINE[503], self._default_head(), "too_many_connections", detail)

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        # The connection passes to a WebSocket protocol, which has its own timeouts and is
        # never told of this one's: stop timing and counting it here.
        self._release()
        super().handle_websocket_upgrade()

    def _release(self) -> None:
        if self.deadline_timer is not None:
            self.deadline_timer.cancel()
            self.deadline_timer = None
        self.timer_at = NEVER
        self.phase = _BUSY
        if self.counted:
            self.counted = False
            self.tally.open -= 1

    # ---

    def _short_cut(self) -> _Exchange | None:
        """An exchange for a plain prediction request, None for anything the ASGI path takes."""
        path = SHORT_CUT.get(self.url)
        if path is None or self.gateway is None:
            return None
        proxy = self.gateway.proxy
        parser = self.parser
        limit = self.limit_concurrency
        if (
            proxy is None
            or self.access_log
            or self.expect_100_continue
            or (limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit))
            or parser.get_method() != b"POST"
            or parser.should_upgrade()
        ):
            return None
        length = b""
        for name, value in self.headers:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                return None
        if not length.isdigit():
            return None
        declared = int(length)
        if declared > proxy.max_body_bytes:
            return None
        self.body_length = declared
        keep_alive = parser.get_http_version() == "1.1" and parser.should_keep_alive()
        return _Exchange(path, self.headers, keep_alive)

    def _answer(self, exchange: _Exchange) -> None:
        proxy = self.gateway.proxy if self.gateway is not None else None
        task = self.loop.create_task(self._forward(proxy, exchange))
        task.add_done_callback(self.tasks.discard)  # uvicorn's shutdown waits for these
        self.tasks.add(task)

    async def _forward(self, proxy: Proxy | None, exchange: _Exchange) -> None:
        body = exchange.body
        data = body[0] if len(body) == 1 else b"".join(body)
        try:
            if proxy is None:
                raise RuntimeError("the gateway stopped serving")
            answer = await proxy.forward(exchange.path, exchange.headers, data, exchange.start)
        except Exception:
            log.exception("unexpected error on %s", exchange.path)
            head = b"content-type: application/json\r\ncontent-length: %d\r\n" % len(INTERNAL_ERROR)
            answer = Message(500, head, INTERNAL_ERROR)
            exchange.keep_alive = False
        self._write(exchange, answer)

    def _write(self, exchange: _Exchange, answer: Message) -> None:
        exchange.response_complete = True
        transport = self.transport
        if exchange.disconnected or transport.is_closing():
            return
        # answer.head carries content-length: Proxy always sets it.
        close = b"" if exchange.keep_alive else b"connection: close\r\n"
        status = STATUS_LINE[answer.status]
        transport.write(
            b"".join((status, self._default_head(), answer.head, close, b"\r\n", answer.body))
        )
        if not exchange.keep_alive:
            transport.close()
        self.on_response_complete()  # counts it; then the next pipelined request or keep-alive


def head_size(url: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """A parsed request head's size on the wire, near enough (the request line's method and
    version, and each header's separators, counted at their usual length)."""
    return len(url) + 16 + sum(len(name) + len(value) + 4 for name, value in headers)


def body_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """A request's declared body length: 0 without one, None when chunked."""
    if any(name == b"transfer-encoding" for name, _ in headers):
        return None
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0
