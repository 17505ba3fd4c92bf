"""The short-cut: a plain request to one of the service's paths is answered by the service, no
ASGI.

A POST to one of ``Service.short_cut_paths`` with a Content-Length and nothing unusual: its
headers and body go to the service (the gateway's proxy, the model server's predictor) and the
answer is written as one buffer, with no ASGI scope, receive/send messages, event or
request-cycle object. Under load that machinery was about half of a gateway process's CPU, and
most of a replica's (bench/README.md).

Anything else about such a request (chunked body, Expect: 100-continue, a query string, a body
over the service's limit, the access log on) takes the ASGI path, which answers it the same
way. So does a request over uvicorn's ``limit_concurrency``, which uvicorn answers there with its
503. A service may also hand a whole request back (``answer`` gives None: a body that does not
validate, say): it then goes to the ASGI app as uvicorn would have given it, body included, so
the app's answer (its 422, its 503) is unchanged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from types import CoroutineType
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle

from httpserver.connection import ClientConnection
from httpserver.service import Reply, Service


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
        "url",
        "headers",
        "body",
        "start",
        "keep_alive",
        "http_version",
        "complete",
        "started",
        "response_complete",
        "disconnected",
        "message_event",
    )

    def __init__(
        self,
        path: str,
        url: bytes,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
        http_version: str,
    ) -> None:
        self.path = path
        self.url = url
        self.headers = headers
        self.body: list[bytes] = []
        self.start = time.perf_counter()
        self.keep_alive = keep_alive
        self.http_version = http_version
        self.complete = False  # the whole body has arrived
        self.started = False  # its turn has come (earlier pipelined requests are answered)
        self.response_complete = False
        self.disconnected = False
        self.message_event = _NO_EVENT


class _Answer:
    __slots__ = ("status", "head", "body")

    def __init__(self, status: int, head: bytes, body: bytes) -> None:
        self.status, self.head, self.body = status, head, body


class ShortCut(ClientConnection):
    """Picks the requests that take the short-cut, has the service answer them and writes the
    answers."""

    def _short_cut(self) -> Exchange | None:
        """An exchange for a plain request the service takes, None for anything the ASGI path
        takes."""
        service = self.service
        if service is None:
            return None
        url = self.url
        path = service.short_cut_paths.get(url)
        if path is None:
            return None
        parser = self.parser
        limit = self.limit_concurrency
        if (
            self.logs_access
            or self.expect_100_continue
            or (limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit))
            or parser.get_method() != b"POST"
            or parser.should_upgrade()
        ):
            return None
        most = service.body_limit()
        if most is None:
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
        if declared > most:
            return None
        self.body_length = declared
        version = parser.get_http_version()
        keep_alive = version == "1.1" and parser.should_keep_alive()
        return Exchange(path, url, self.headers, keep_alive, version)

    def _answer(self, exchange: Exchange) -> None:
        service = self.service
        assert service is not None  # an exchange is made only with one
        body = exchange.body
        data = body[0] if len(body) == 1 else b"".join(body)
        try:
            answer = service.answer(exchange, data)
        except Exception:
            self._write(exchange, self._internal_error(service, exchange))
            return
        if answer is None:
            self._to_app(exchange, data)
        elif type(answer) is CoroutineType:  # an exact type test: isinstance on an ABC costs more
            pending = cast(Coroutine[Any, Any, Reply | None], answer)
            task = self.loop.create_task(self._await(service, exchange, data, pending))
            task.add_done_callback(self.tasks.discard)  # uvicorn's shutdown waits for these
            self.tasks.add(task)
        else:
            self._write(exchange, cast(Reply, answer))

    async def _await(
        self,
        service: Service,
        exchange: Exchange,
        data: bytes,
        pending: Coroutine[Any, Any, Reply | None],
    ) -> None:
        try:
            answer = await pending
        except Exception:
            answer = self._internal_error(service, exchange)
        if answer is None:
            self._to_app(exchange, data)
        else:
            self._write(exchange, answer)

    def _internal_error(self, service: Service, exchange: Exchange) -> Reply:
        service.log.exception("unexpected error on %s", exchange.path)
        body = service.internal_error
        head = b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)
        exchange.keep_alive = False
        return _Answer(500, head, body)

    def _write(self, exchange: Exchange, answer: Reply) -> None:
        exchange.response_complete = True
        transport = self.transport
        if exchange.disconnected or transport.is_closing():
            return
        # answer.head carries content-length: every service sets it.
        close = b"" if exchange.keep_alive else b"connection: close\r\n"
        status = STATUS_LINE[answer.status]
        transport.write(
            b"".join((status, self._default_head(), answer.head, close, b"\r\n", answer.body))
        )
        if not exchange.keep_alive:
            transport.close()
        self.on_response_complete()  # counts it; then the next pipelined request or keep-alive

    def _to_app(self, exchange: Exchange, body: bytes) -> None:
        """The request, whole, to the ASGI app: the scope and cycle uvicorn would have made."""
        scope = {
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": exchange.http_version,
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "root_path": self.root_path,
            "headers": exchange.headers,
            "state": self.app_state.copy(),
            "method": "POST",
            "path": self.root_path + exchange.path,
            "raw_path": self.root_path.encode("ascii") + exchange.url,
            "query_string": b"",
        }
        cycle = RequestResponseCycle(
            scope=scope,  # type: ignore[arg-type]
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=False,
            keep_alive=exchange.keep_alive,
            on_response=self.on_response_complete,
        )
        cycle.body = bytearray(body)
        cycle.more_body = False
        cycle.message_event.set()  # the whole body is here: receive() need not wait
        cycle.disconnected = exchange.disconnected
        # Where uvicorn looks for the request in progress (connection lost, a client timeout).
        if self.cycle is exchange:  # type: ignore[comparison-overlap]
            self.cycle = cycle
        exchange.response_complete = True
        task = self.loop.create_task(cycle.run_asgi(self.app))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)
