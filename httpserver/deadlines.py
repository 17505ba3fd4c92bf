"""Every client deadline of a connection, on one timer (httpserver/limits.py).

Keep-alive between requests, the head timeout while a head arrives (from the accept for a
connection's first), the body timeouts while a body does: a request late on either gets a 408
and its connection is closed; a new connection that sends nothing, or an idle one, is closed.

The timer is moved lazily: a phase that begins only moves it when it must fire earlier, and when
it fires it checks the phase's due time and re-arms if that is later. uvicorn arms a keep-alive
timer after every answer and cancels it on the next read, two timer operations per request;
here a busy connection costs about one per keep-alive period.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from httpserver.connection import (
    ACCEPTED,
    ANSWERING,
    KEEP_ALIVE,
    READING_BODY,
    READING_HEAD,
    ClientConnection,
)
from httpserver.limits import BODY, HEAD, IDLE, ClientLimits, error_answer
from httpserver.short_cut import Exchange

NEVER = float("inf")

# (default head, limits, phase) -> the whole 408 answer. Connections that arrived together time
# out together (a slowloris flood: thousands in one loop turn), and each then costs one write
# and one close instead of formatting and JSON-encoding the same answer again.
_timeout_answers: dict[tuple[bytes, ClientLimits, str], bytes] = {}


class Deadlines(ClientConnection):
    """The one timer: armed as a phase begins (protocol.py), checked when it fires."""

    deadline_timer: asyncio.TimerHandle | None
    timer_at: float  # when deadline_timer fires; NEVER when it is not armed
    since: float  # when the phase began (for READING_BODY: when the head was in)
    last_read: float  # loop time of the last read from the client

    def _unset_keepalive_if_required(self) -> None:
        # Called on every read (and by uvicorn on connection lost): the time is noted once per
        # read, for whichever deadline the bytes read move.
        self.last_read = self.loop.time()

    def _become_idle(self) -> None:
        self.phase = KEEP_ALIVE
        self.since = now = self.loop.time()
        due = now + self.timeout_keep_alive
        if due < self.timer_at:
            self._arm(due)

    def _arm(self, due: float) -> None:
        if self.deadline_timer is not None:
            self.deadline_timer.cancel()
        self.timer_at = due
        self.deadline_timer = self.loop.call_at(due, self._deadline_due)

    def _stop_timer(self) -> None:
        if self.deadline_timer is not None:
            self.deadline_timer.cancel()
            self.deadline_timer = None
        self.timer_at = NEVER
        self.phase = ANSWERING  # a phase with no deadline: nothing arms the timer again

    def _due(self) -> float:
        phase, limits = self.phase, self.limits
        if phase == KEEP_ALIVE:
            return self.since + self.timeout_keep_alive
        if phase in (ACCEPTED, READING_HEAD):
            return self.since + limits.header_timeout_s
        if phase == READING_BODY:
            stalled = self.last_read + limits.body_timeout_s
            return min(stalled, limits.body_due(self.since, self.body_length))
        return NEVER  # ANSWERING: the replica's timeouts bound it; re-armed when a phase begins

    def _deadline_due(self) -> None:
        self.deadline_timer = None
        self.timer_at = NEVER
        if self.transport.is_closing():
            return
        due = self._due()
        if due == NEVER:
            return
        now = self.loop.time()
        if now < due:
            self._arm(due)
            return
        if self.phase != KEEP_ALIVE and self.flow.read_paused:
            # The server stopped reading (a pipelined request waits its turn, or a body buffer
            # is full): the client is not the slow one. Its clocks start again.
            self.since = self.last_read = now
            self._arm(self._due())
            return
        self._time_out()

    def _time_out(self) -> None:
        phase, transport, cycle = self.phase, self.transport, self.cycle
        if phase == KEEP_ALIVE:
            transport.close()
            return
        if phase == ACCEPTED:
            self.tally.timeouts[IDLE] += 1
            transport.close()
            return
        answer = None
        if phase == READING_HEAD:
            self.tally.timeouts[HEAD] += 1
            # Not when an earlier request is still being answered: its answer comes first.
            if cycle is None or cycle.response_complete:
                answer = self._timeout_answer(HEAD)
        else:
            self.tally.timeouts[BODY] += 1
            answered = cycle is None or (
                cycle.response_complete or getattr(cycle, "response_started", False)
            )
            # The short-cut's Exchange sits where uvicorn keeps its cycle (typed as uvicorn's);
            # an exact type test is the cheapest way to tell them apart on every event.
            waiting = bool(self.pipeline) or (
                type(cycle) is Exchange and not cycle.started  # type: ignore[comparison-overlap]
            )
            if not answered and not waiting:
                answer = self._timeout_answer(BODY)
            # Whatever runs for this request sees a client gone: nothing more is written.
            if cycle is not None:
                cycle.disconnected = True
                cycle.message_event.set()
        if answer is not None:
            transport.write(answer)
        transport.close()

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


def body_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """A request's declared body length: 0 without one, None when chunked."""
    if any(name == b"transfer-encoding" for name, _ in headers):
        return None
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0
