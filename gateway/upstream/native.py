"""The production forwarding client: keep-alive HTTP/1.1 connections on asyncio protocols.

Answers are parsed by httptools (the parser uvicorn uses). The gateway only ever POSTs bytes and
reads bytes back, so a general client's work (URL objects, cookie jars, header multidicts,
payload registries, trace hooks, a timer context per request) is pure overhead. Profiled under
wrk, a general client's request machinery was about 40% of a gateway process's CPU; this client
does the same job in a few percent (see bench/README.md).

What it writes is checked (``wire.request_bytes`` refuses CR, LF and NUL in a header), and what it
reads is bounded: the head by ``MAX_HEAD_BYTES``, the body by ``max_body_bytes``.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections import deque
from urllib.parse import urlsplit

import httptools

from gateway.errors import BadRequest, UpstreamFailure
from gateway.wire import FRAMED, MAX_HEAD_BYTES, Headers, Message, request_bytes

# A replica's answer body larger than this is refused (GATEWAY_MAX_RESPONSE_BYTES sets it).
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
UNSAFE_IN_TARGET = re.compile(r"[\r\n\0 ]")


class _Target:
    """One replica URL, parsed once: where to connect and the fixed start of every request."""

    __slots__ = ("key", "host", "port", "tls", "head")

    def __init__(self, url: str) -> None:
        # urlsplit would silently drop a CR or LF; the request line must not carry one at all.
        if UNSAFE_IN_TARGET.search(url):
            raise BadRequest("request target holds a CR, LF, NUL or space; nothing was sent")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UpstreamFailure("connect_error", f"cannot connect to {url}: unsupported URL")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.key = (self.host, self.port, self.tls)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        authority = parts.netloc.rpartition("@")[2]
        self.head = f"POST {path} HTTP/1.1\r\nhost: {authority}\r\n".encode("latin-1")


class _Disconnected(Exception):
    """The replica closed the connection before the whole answer arrived."""


class _TooLarge(Exception):
    """The replica's answer body grew past the limit; the connection was closed."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection to a replica; carries one request at a time."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, key: tuple[str, int, bool], max_body: int
    ) -> None:
        self.loop = loop
        self.key = key
        self.max_body = max_body
        self.body_size = 0
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Message] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0  # loop.time() the timer fires at
        self.status = 0
        # Bytes of the answer until its head is complete (usually the first read, whole); the
        # head is sliced out of them rather than collected header by header.
        self.pending = b""
        self.head: bytes | None = None
        self.body: list[bytes] = []
        self.keep_alive = False
        self.closed = False
        self.unsolicited = False  # a second answer began after ours: never reuse
        self.used = False  # has carried a request before
        self.answered = False  # some byte of an answer to the request in flight has arrived
        self.idle_since = 0.0
        # Timeouts of the request in flight (loop.time() values): the whole budget, and the read
        # timeout, which runs from the moment the request is written and restarts on every read.
        self.deadline = 0.0
        self.read_timeout = 0.0
        self.last_read = 0.0
        self.writing_paused = False

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio.Protocol declares the base class; create_connection hands a stream protocol
        # an asyncio.Transport, whose write and pause/resume this class uses.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            # Bytes nobody asked for: the connection's state is unknown, so it cannot be reused.
            self.close()
            return
        self.answered = True
        self.last_read = self.loop.time()
        if self.head is None:
            self.pending = self.pending + data if self.pending else data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.close()
            if not waiter.done():
                waiter.set_exception(exc)
            return
        if self.head is None and len(self.pending) > MAX_HEAD_BYTES:
            self.close()
            if not waiter.done():
                waiter.set_exception(httptools.HttpParserError("answer head too large"))

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        # The replica has taken the (large) body: only now may it be blamed for not answering.
        self.writing_paused = False
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            self.last_read = self.loop.time()
            self.arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self._reads_until_close():
            waiter.set_result(self._response())  # no length given: the close ends the body
        else:
            waiter.set_exception(_Disconnected())

    # --- httptools callbacks ---

    def on_message_begin(self) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            self.unsolicited = True

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        buf = self.pending
        start = 0
        while buf.startswith(b"\r\n", start):  # the parser allows empty lines before an answer
            start += 2
        end = buf.find(b"\r\n\r\n", start)  # the parser checked the CRLFs: it is there
        if 100 <= status < 200:
            # An interim answer (100 Continue, 103 Early Hints) has no body; the real one
            # follows, and may already be in this read.
            self.pending = buf[end + 4 :]
            return
        self.status = status
        self.head = buf[buf.find(b"\r\n", start) + 2 : end + 2]
        self.pending = b""

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.body_size += len(body)
        if self.body_size > self.max_body:
            self.body = []
            self.close()
            waiter = self.waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(_TooLarge())

    def on_message_complete(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if self.head is None:
                self.body = []  # the end of an interim answer: the real one follows
                return
            self.keep_alive = self.parser.should_keep_alive()
            waiter.set_result(self._response())

    def _response(self) -> Message:
        body = self.body
        data = body[0] if len(body) == 1 else b"".join(body)
        response = Message(self.status, self.head or b"", data)
        self.body = []  # anything parsed after this answer cannot leak into it
        self.body_size = 0
        return response

    # --- timeouts ---

    def _due(self) -> float:
        if self.writing_paused:
            return self.deadline
        return min(self.deadline, self.last_read + self.read_timeout)

    def arm(self) -> None:
        """Make sure the connection's one timer fires no later than the request in flight is due.

        The timer is not cancelled when an answer arrives, nor moved by reads: it stays armed
        and, when it fires early, moves itself to the request then in flight. A new timer per
        request (and a cancel per answer) showed in profiles of the hot path.
        """
        due = self._due()
        if self.timer is None or self.timer_at > due:
            if self.timer is not None:
                self.timer.cancel()
            self.timer_at = due
            self.timer = self.loop.call_at(due, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        waiter = self.waiter
        if waiter is None or waiter.done():
            return  # idle: the next request arms it again
        due = self._due()
        if self.loop.time() >= due:
            self.close()
            waiter.set_exception(TimeoutError())
        else:
            self.timer_at = due
            self.timer = self.loop.call_at(due, self._on_timer)

    # ---

    def _reads_until_close(self) -> bool:
        return self.head is not None and FRAMED.search(self.head) is None

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()


class NativeUpstream:
    """Keep-alive connections per replica, reused newest first; one request per connection."""

    # An idle connection older than this is closed rather than reused: uvicorn (the model
    # server) closes idle connections after 5 s, and reusing one just as it closes would fail a
    # try. A replica that closes sooner is seen closing and its connection dropped at once.
    KEEPALIVE_S = 4.0

    def __init__(
        self,
        connect_timeout: float,
        read_timeout: float,
        pool_size: int,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.max_body_bytes = max_body_bytes
        self.read_timeout = read_timeout
        self.limit = max(1, pool_size)  # open connections per replica
        self.loop = asyncio.get_running_loop()
        self.targets: dict[str, _Target] = {}
        self.idle: dict[tuple[str, int, bool], list[_Connection]] = {}
        self.opened: dict[tuple[str, int, bool], int] = {}
        self.waiting: dict[tuple[str, int, bool], deque[asyncio.Future[None]]] = {}
        self.busy: set[_Connection] = set()
        self.tls: ssl.SSLContext | None = None

    async def post(self, url: str, body: bytes, headers: Headers, timeout: float) -> Message:
        target = self.targets.get(url)
        if target is None:
            target = self._target(url)
        deadline = self.loop.time() + timeout
        request = request_bytes(target.head, headers, body)  # refuses CR, LF, NUL: BadRequest

        conn = self._take_idle(target.key)
        if conn is None:
            conn = await self._open(target, url, deadline)
        try:
            reused = conn.used
            try:
                return await self._exchange(conn, request, deadline)
            except _Disconnected:
                if not reused or conn.answered:
                    raise
            # A kept-alive connection the replica closed as the request went out, before any
            # byte of an answer (its idle timeout racing us): once more, on a new connection.
            conn = await self._open(target, url, deadline)
            return await self._exchange(conn, request, deadline)
        except _Disconnected:
            raise UpstreamFailure(
                "protocol_error", f"{url}: connection closed before the whole answer"
            ) from None
        except TimeoutError:
            raise UpstreamFailure("timeout", f"no answer from {url} in time") from None
        except _TooLarge:
            raise UpstreamFailure(
                "protocol_error", f"{url}: answer body over {self.max_body_bytes} bytes"
            ) from None
        except httptools.HttpParserError as exc:
            raise UpstreamFailure("protocol_error", f"{url}: bad HTTP answer: {exc}") from None

    async def _exchange(self, conn: _Connection, request: bytes, deadline: float) -> Message:
        """One request on ``conn`` and its whole answer; the connection is kept or closed."""
        loop = self.loop
        waiter: asyncio.Future[Message] = loop.create_future()
        conn.waiter = waiter
        conn.used = True
        conn.answered = False
        conn.status = 0
        conn.pending = b""
        conn.head = None
        conn.body = []
        conn.keep_alive = False
        conn.deadline = deadline
        conn.read_timeout = read_timeout = self.read_timeout
        self.busy.add(conn)
        reusable = False
        try:
            # A connection is handed out only once connection_made has set its transport.
            conn.transport.write(request)  # type: ignore[union-attr]
            conn.last_read = now = loop.time()
            # A body too large to go out at once pauses the read timeout until it has (arm()
            # knows); otherwise the armed timer, if early enough, stays as it is.
            due = min(deadline, now + read_timeout)
            if conn.writing_paused or conn.timer is None or conn.timer_at > due:
                conn.arm()
            response = await waiter
            # Reused only when the replica said keep-alive and took the whole request.
            reusable = (
                conn.keep_alive
                and not conn.closed
                and not conn.writing_paused
                and not conn.unsolicited
            )
        finally:
            conn.waiter = None
            self.busy.discard(conn)
            if reusable:
                self._give_back(conn)
            else:
                conn.close()  # cancelled, failed or told to close: never reused
                self._forget(conn)
        return response

    def _target(self, url: str) -> _Target:
        target = _Target(url)
        if len(self.targets) > 1024:  # URLs come from routing.yaml; bound it all the same
            self.targets.clear()
        self.targets[url] = target
        return target

    def _take_idle(self, key: tuple[str, int, bool]) -> _Connection | None:
        stack = self.idle.get(key)
        if not stack:
            return None
        oldest_ok = self.loop.time() - self.KEEPALIVE_S
        while stack:
            conn = stack.pop()  # newest first: the others go idle and time out
            if not conn.closed and conn.idle_since >= oldest_ok:
                return conn
            conn.close()
            self._forget(conn)
        return None

    def _give_back(self, conn: _Connection) -> None:
        conn.idle_since = self.loop.time()
        self.idle.setdefault(conn.key, []).append(conn)
        self._wake(conn.key)

    def _forget(self, conn: _Connection) -> None:
        key = conn.key
        if key in self.opened:
            self.opened[key] -= 1
        self._wake(key)

    def _wake(self, key: tuple[str, int, bool]) -> None:
        queue = self.waiting.get(key)
        while queue:
            waiter = queue.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _open(self, target: _Target, url: str, deadline: float) -> _Connection:
        """A new connection, or an idle one given back while waiting for room under the limit."""
        loop = self.loop
        key = target.key
        while self.opened.get(key, 0) >= self.limit:
            waiter = loop.create_future()
            self.waiting.setdefault(key, deque()).append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except BaseException as exc:
                if waiter.done() and not waiter.cancelled():
                    # Woken for a free slot, then timed out or cancelled before taking it:
                    # hand the wake-up on, or another waiter sleeps while a connection idles.
                    self._wake(key)
                else:
                    waiter.cancel()
                if isinstance(exc, TimeoutError):
                    raise UpstreamFailure("timeout", f"no answer from {url} in time") from None
                raise
            conn = self._take_idle(key)
            if conn is not None:
                return conn
        self.opened[key] = self.opened.get(key, 0) + 1
        connect_by = min(deadline, loop.time() + self.connect_timeout)
        try:
            async with asyncio.timeout_at(connect_by):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop, key, self.max_body_bytes),
                    target.host,
                    target.port,
                    ssl=self._tls() if target.tls else None,
                    server_hostname=target.host if target.tls else None,
                )
        except TimeoutError:
            self.opened[key] -= 1
            self._wake(key)
            if connect_by < deadline:
                raise UpstreamFailure("timeout", f"connect timeout to {url}") from None
            raise UpstreamFailure("timeout", f"no answer from {url} in time") from None
        except OSError as exc:
            self.opened[key] -= 1
            self._wake(key)
            raise UpstreamFailure("connect_error", f"cannot connect to {url}: {exc}") from None
        except BaseException:
            self.opened[key] -= 1
            self._wake(key)
            raise
        return conn

    def _tls(self) -> ssl.SSLContext:
        if self.tls is None:
            self.tls = ssl.create_default_context()
        return self.tls

    async def aclose(self) -> None:
        for stack in self.idle.values():
            for conn in stack:
                conn.close()
        self.idle.clear()
        for conn in list(self.busy):
            conn.close()
        self.busy.clear()
        self.opened.clear()
        for queue in self.waiting.values():
            for waiter in queue:
                if not waiter.done():
                    waiter.cancel()
        self.waiting.clear()
        await asyncio.sleep(0)  # let the transports run their close callbacks
