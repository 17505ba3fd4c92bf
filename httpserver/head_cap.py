"""The cap on a request head's size (GATEWAY_MAX_HEAD_BYTES): a head over it gets a 431 and its
connection is closed, on either path.

A head that arrives whole in one read of at most the cap is within it. Otherwise its size is
counted per read while it arrives (httptools keeps the pieces of an incomplete head until it is
whole, so this bounds the memory a client can hold), and once whole when it came in a large read.
"""

from __future__ import annotations

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from httpserver.connection import READING_HEAD, ClientConnection
from httpserver.limits import error_answer


class HeadTooLarge(Exception):
    """Raised from the parser's callback to stop it."""


class HeadCap(ClientConnection):
    """uvicorn's data_received, with the head counted and capped."""

    head_bytes: int  # of the head arriving, counted per read while it is incomplete
    check_head: bool  # count the head's size when it is complete (see data_received)
    head_refused: bool

    def data_received(self, data: bytes) -> None:
        began = self.phase
        limit = self.limits.max_head_bytes
        # A head that arrives whole in one read of at most the limit is within it: only a
        # larger read, or a head continued from an earlier read, has its size counted when it
        # is complete (on_headers_complete).
        self.check_head = began == READING_HEAD or len(data) > limit
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
        if self.phase != READING_HEAD:  # the head is whole (or none began): the common case
            return
        # A head still incomplete after this read: httptools keeps its pieces until it is
        # whole, so its size is capped here, counted per read (a head that began in this read
        # counts the read whole: at most the end of an earlier pipelined request more).
        size = self.head_bytes + len(data) if began == READING_HEAD else len(data)
        self.head_bytes = size
        if size > limit and not self.transport.is_closing():
            self._head_too_large()

    def _cap_whole_head(self) -> None:
        """Called when a head is whole and ``check_head`` is set: stop the parser if it is over."""
        if head_size(self.url, self.headers) > self.limits.max_head_bytes:
            self.head_refused = True
            raise HeadTooLarge  # stops the parser; data_received answers

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


def head_size(url: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """A parsed request head's size on the wire, near enough (the request line's method and
    version, and each header's separators, counted at their usual length)."""
    return len(url) + 16 + sum(len(name) + len(value) + 4 for name, value in headers)
