"""ServerProtocol: uvicorn's httptools protocol with the pieces mixed in.

Each piece is a class in a module of its own, over the state they share (connection.py): the
short-cut (short_cut.py), the deadlines (deadlines.py), back-pressure (flow_control.py), the head
cap (head_cap.py) and the connection cap (connection_cap.py). This class holds the callbacks of
uvicorn's where more than one piece has a say, and gives each event to them in turn.

The pieces' methods are methods of the one protocol object, so the split costs a request no
object and no call: every piece's state starts in the one __init__ below, and the two deadline
moves every request makes are written out in on_message_begin and on_headers_complete.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from httpserver.connection import ACCEPTED, ANSWERING, READING_BODY, READING_HEAD
from httpserver.connection_cap import ConnectionCap
from httpserver.deadlines import NEVER, body_length
from httpserver.flow_control import FlowControl
from httpserver.head_cap import HeadCap
from httpserver.limits import ClientLimits
from httpserver.service import Service
from httpserver.short_cut import Exchange, ShortCut
from httpserver.tally import ConnectionTally


class ServerProtocol(ShortCut, HeadCap, ConnectionCap, FlowControl):
    """A process serves with a subclass that names its service (``service_of``), e.g.
    ``uvicorn.run(..., http="gateway.server:GatewayProtocol")``; this class itself takes no
    short-cut and keeps only the limits.

    data_received is the head cap's (head_cap.py); pause_writing and resume_writing are
    back-pressure's (flow_control.py); the callbacks below are shared."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Every piece's state (declared in its class) starts here, in one __init__: an __init__
        # or a call per piece would cost each new connection more.
        service = self.service = self.service_of(self.app)
        self.limits = service.client_limits if service is not None else ClientLimits()
        tally = service.client_tally if service is not None else None
        self.tally = tally if tally is not None else ConnectionTally()
        # uvicorn's access log is on whenever its logger has handlers, even at --log-level
        # warning, where it writes nothing: only one that writes lines turns the short-cut off.
        self.logs_access = self.access_log and self.access_logger.isEnabledFor(logging.INFO)
        self.deadline_timer = None
        self.timer_at = NEVER
        self.phase = ACCEPTED
        self.since = 0.0
        self.last_read = 0.0
        self.body_length = 0
        self.counted = False
        self.head_bytes = 0
        self.check_head = False
        self.head_refused = False
        self.send_stalled = 0.0

    @classmethod
    def service_of(cls, app: Any) -> Service | None:
        """The process's service, found in (or made for) the ASGI app uvicorn serves; None:
        no short-cut. uvicorn may wrap the app in middleware: walk ``.app`` down to it."""
        return None

    # uvicorn annotates the base transport; the event loop hands a full Transport (the flow
    # control's pause and resume need it), so the override is narrower on purpose.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self._admit(transport):
            return
        self.since = self.last_read = now = self.loop.time()
        self._arm(now + self.limits.header_timeout_s)

    def on_message_begin(self) -> None:
        # The ASGI scope is built in on_headers_complete, and only for requests that need one.
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        # The head deadline begins (deadlines.py). Written out here, not called: every request
        # passes this way.
        if self.phase != ACCEPTED:  # a connection's first head is timed from the accept
            self.since = self.last_read
        self.phase = READING_HEAD
        due = self.since + self.limits.header_timeout_s
        if due < self.timer_at:
            self._arm(due)

    def on_headers_complete(self) -> None:
        if self.check_head:
            self._cap_whole_head()
        # The body deadline begins (deadlines.py), written out as the head's above.
        self.phase = READING_BODY
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
        # The short-cut's Exchange stands where uvicorn keeps its cycle, so that uvicorn's own
        # pipelining and shutdown see a request in progress (uvicorn types it as its class).
        self.cycle = exchange  # type: ignore[assignment]
        if previous is None or previous.response_complete:
            exchange.started = True
        else:
            # Pipelined behind a request still being answered: queued in order with uvicorn's.
            self.flow.pause_reading()
            # Queued in uvicorn's pipeline as uvicorn's cycles are (typed as its class).
            self.pipeline.appendleft((exchange, None))  # type: ignore[arg-type]

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        # The short-cut's Exchange sits where uvicorn keeps its cycle (typed as uvicorn's);
        # an exact type test is the cheapest way to tell them apart on every event.
        if type(cycle) is Exchange:  # type: ignore[comparison-overlap]
            cycle.body.append(body)  # bounded: the declared length was checked
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        cycle = self.cycle
        self.phase = ANSWERING
        # The short-cut's Exchange sits where uvicorn keeps its cycle (typed as uvicorn's);
        # an exact type test is the cheapest way to tell them apart on every event.
        if type(cycle) is Exchange:  # type: ignore[comparison-overlap]
            cycle.complete = True
            if cycle.started:
                self._answer(cycle)
        else:
            super().on_message_complete()
            if cycle is not None and cycle.response_complete:  # answered early (a 413, a 405)
                self._become_idle()

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        # Called for a pipelined request whose turn has come.
        if type(cycle) is Exchange:
            cycle.started = True
            if cycle.complete:
                self._answer(cycle)
        else:
            super()._start_asgi_task(cycle, app)

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
        if self.phase == ANSWERING:  # not when the next request has begun arriving
            self._become_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        # The connection passes to a WebSocket protocol, which has its own timeouts and is
        # never told of this one's: stop timing and counting it here.
        self._release()
        super().handle_websocket_upgrade()

    def _release(self) -> None:
        self._stop_timer()
        self._count_out()
