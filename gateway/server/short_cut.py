"""The short-cut: a plain prediction request goes straight to ``Proxy.forward``, no ASGI.

A POST to /predict or /predict/batch with a Content-Length and nothing unusual: its headers and
body go to the proxy and the answer is written as one buffer, with no ASGI scope, receive/send
messages, event or request-cycle object. Under load that machinery was about half of a gateway
process's CPU (bench/README.md).

Anything else about a prediction request (chunked body, Expect: 100-continue, a query string, a
body over the limit, the access log on) takes the ASGI path, which answers it the same way. So
does a request over uvicorn's ``limit_concurrency`` (unset by ``gateway serve``, settable when
running uvicorn by hand), which uvicorn answers there with its 503: the gateway's own in-flight
cap is per replica and does not bound the connections and tasks of the process.
"""

from __future__ import annotations

import logging
import time

from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from gateway.proxy import Proxy
from gateway.server.connection import ClientConnection
from gateway.wire import Message

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


class Exchange:
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


class ShortCut(ClientConnection):
    """Picks the requests that take the short-cut, forwards them and writes their answers."""

    def _short_cut(self) -> Exchange | None:
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
        return Exchange(path, self.headers, keep_alive)

    def _answer(self, exchange: Exchange) -> None:
        proxy = self.gateway.proxy if self.gateway is not None else None
        task = self.loop.create_task(self._forward(proxy, exchange))
        task.add_done_callback(self.tasks.discard)  # uvicorn's shutdown waits for these
        self.tasks.add(task)

    async def _forward(self, proxy: Proxy | None, exchange: Exchange) -> None:
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

    def _write(self, exchange: Exchange, answer: Message) -> None:
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
