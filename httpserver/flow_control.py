"""Back-pressure: a client that leaves its answers unread.

While the transport's write buffer is over its high-water mark the client is read no further
and none of its pipelined requests is started; if it stays there for the send timeout
(httpserver/limits.py) the connection is aborted (a close would wait for the buffer to
drain). The send timeout shares the connection's one timer with the other deadlines.
"""

from __future__ import annotations

from httpserver.connection import ANSWERING
from httpserver.deadlines import NEVER, Deadlines
from httpserver.limits import SEND


class FlowControl(Deadlines):
    """uvicorn's pause_writing and resume_writing, with reading and the send timeout."""

    send_stalled: float  # loop time the write buffer went over its high-water mark; 0: it is not

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
        if self.phase != ANSWERING:  # the server held this client up: its clocks start again
            self.since = self.last_read = self.loop.time()
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            # What on_response_complete left while writing was paused: reading, the next
            # pipelined request (already read), or the keep-alive wait.
            self.flow.resume_reading()
            if self.pipeline:
                cycle, app = self.pipeline.pop()
                self._start_asgi_task(cycle, app)
            elif self.phase == ANSWERING:
                self._become_idle()

    def _deadline_due(self) -> None:
        if not self.send_stalled:
            super()._deadline_due()
            return
        # Whatever phase the connection is in, nothing moves until the client reads.
        self.deadline_timer = None
        self.timer_at = NEVER
        due = self.send_stalled + self.limits.send_timeout_s
        if self.loop.time() < due:
            self._arm(due)
            return
        self.tally.timeouts[SEND] += 1
        cycle = self.cycle
        if cycle is not None:
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.abort()  # close() would wait for the buffer to drain: forever
