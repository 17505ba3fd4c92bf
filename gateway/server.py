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

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from gateway.app import GatewayApp
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

# id(server_state.default_headers) -> (that list, its bytes); shared by the process's connections.
_default_heads: dict[int, tuple[list[tuple[bytes, bytes]], bytes]] = {}


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
        # One keep-alive timer per connection, moved lazily: uvicorn arms a new one after every
        # answer and cancels it on the next read, two timer operations per request.
        self.keepalive_timer: asyncio.TimerHandle | None = None
        self.idle_since: float | None = None  # None while a request is being read or answered

    # --- httptools callbacks ---

    def on_message_begin(self) -> None:
        # The ASGI scope is built in on_headers_complete, and only for requests that need one.
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    def on_headers_complete(self) -> None:
        exchange = self._short_cut()
        if exchange is None:
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
        if type(cycle) is _Exchange:
            cycle.complete = True
            if cycle.started:
                self._answer(cycle)
        else:
            super().on_message_complete()

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

    # --- keep-alive ---

    def _unset_keepalive_if_required(self) -> None:
        # uvicorn calls this on every read: the connection is busy, no longer idle.
        self.idle_since = None

    def on_response_complete(self) -> None:
        # uvicorn's, but arming the keep-alive timer only when none is pending.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self.idle_since = now = self.loop.time()
        if self.keepalive_timer is None:
            self.keepalive_timer = self.loop.call_at(
                now + self.timeout_keep_alive, self._keepalive_due
            )

    def _keepalive_due(self) -> None:
        self.keepalive_timer = None
        idle_since = self.idle_since
        if idle_since is None or self.transport.is_closing():
            return  # busy: armed again when the answer is written
        due = idle_since + self.timeout_keep_alive
        if self.loop.time() >= due:
            self.transport.close()
        else:
            self.keepalive_timer = self.loop.call_at(due, self._keepalive_due)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.keepalive_timer is not None:
            self.keepalive_timer.cancel()
            self.keepalive_timer = None
        super().connection_lost(exc)

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
        if not length.isdigit() or int(length) > proxy.max_body_bytes:
            return None
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
