"""What a server allows a client connection: how long a request may take to arrive, how many
connections one process holds open, and the answers it gives a client over either limit.

The server protocol (httpserver/) enforces these with one lazily moved timer per connection;
this module holds the numbers and the rules that turn them into due times.

- A request's head must have arrived whole ``header_timeout_s`` after its first byte (after the
  accept, for a connection's first request: a connection that sends nothing is closed then).
- Its body may go no longer than ``body_timeout_s`` without a byte, and must have arrived whole
  ``body_timeout_s`` plus its length at ``body_min_rate`` bytes a second after its head, so a
  trickle of one byte every few seconds cannot hold a connection either. The length counted is
  at most the body limit (a chunked body, whose length is unknown, counts as the limit).
- Past either, a client gets a 408 ``request_timeout`` and the connection is closed; nothing of
  the request has been acted on, since only whole requests are.
- A request head over ``max_head_bytes`` gets a 431 ``request_head_too_large`` and the
  connection is closed: the parser buffers a head until it is whole, so the cap bounds that.
- A client that sends requests but does not read the answers fills the connection's write
  buffer; past the transport's high-water mark the server stops reading that connection until
  the buffer drains, so it holds at most that buffer and one answer. If it does not drain within
  ``send_timeout_s`` the connection is dropped, its buffer with it.
- Over ``max_connections`` open client connections, a new one is answered 503 at once and closed,
  before anything of it is read, so the clients already connected keep their file descriptors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# Timeout phases, the values of a metric label.
IDLE = "idle"  # a new connection that sent no byte in time
HEAD = "head"
BODY = "body"
SEND = "send"  # the client did not read its answers: dropped, no answer
PHASES = (IDLE, HEAD, BODY, SEND)

RETRY_AFTER_S = 1  # what a refused connection and a shed request are told to wait


@dataclass(frozen=True, slots=True)
class ClientLimits:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    body_min_rate: float = 16384.0  # bytes a second, over the whole body
    max_connections: int = 10_000
    max_body_bytes: int = 1024 * 1024
    max_head_bytes: int = 64 * 1024
    send_timeout_s: float = 10.0

    def body_due(self, head_done: float, length: int | None) -> float:
        """When a body whose head arrived at ``head_done`` must have arrived whole (``None``:
        chunked, of unknown length)."""
        counted = self.max_body_bytes if length is None else min(length, self.max_body_bytes)
        return head_done + self.body_timeout_s + counted / self.body_min_rate


def error_answer(status_line: bytes, default_head: bytes, error: str, detail: str) -> bytes:
    """A whole JSON error answer that closes the connection, ready for the wire."""
    body = json.dumps({"error": error, "detail": detail}).encode()
    retry = b"retry-after: %d\r\n" % RETRY_AFTER_S if status_line[9:12] == b"503" else b""
    return (
        b"%s%scontent-type: application/json\r\ncontent-length: %d\r\n%sconnection: close\r\n\r\n%s"
        % (
            status_line,
            default_head,
            len(body),
            retry,
            body,
        )
    )
