"""What the gateway allows a client connection: how long a request may take to arrive, how many
connections one process holds open, and the answers it gives a client over either limit.

The server protocol (gateway/server/) enforces these with one lazily moved timer per
connection; this module holds the numbers and the rules that turn them into due times.

- A request's head must have arrived whole ``header_timeout_s`` after its first byte (after the
  accept, for a connection's first request: a connection that sends nothing is closed then).
- Its body may go no longer than ``body_timeout_s`` without a byte, and must have arrived whole
  ``body_timeout_s`` plus its length at ``body_min_rate`` bytes a second after its head, so a
  trickle of one byte every few seconds cannot hold a connection either. The length counted is
  at most the body limit (a chunked body, whose length is unknown, counts as the limit).
- Past either, a client gets a 408 ``request_timeout`` and the connection is closed; nothing of
  the request has been forwarded, since only whole requests are.
- A request head over ``max_head_bytes`` gets a 431 ``request_head_too_large`` and the
  connection is closed: the parser buffers a head until it is whole, so the cap bounds that.
- A client that sends requests but does not read the answers fills the connection's write
  buffer; past the transport's high-water mark the gateway stops reading that connection until
  the buffer drains, so it holds at most that buffer and one answer. If it does not drain within
  ``send_timeout_s`` the connection is dropped, its buffer with it.
- Over ``max_connections`` open client connections, a new one is answered 503 at once and closed,
  before anything of it is read, so the clients already connected and the replica connections
  keep their file descriptors.
"""

from __future__ import annotations

import json
import logging
import resource
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.settings import GatewaySettings

log = logging.getLogger("gateway")

# Timeout phases, the values of a metric label.
IDLE = "idle"  # a new connection that sent no byte in time
HEAD = "head"
BODY = "body"
SEND = "send"  # the client did not read its answers: dropped, no answer
PHASES = (IDLE, HEAD, BODY, SEND)

# File descriptors kept out of the connection cap for everything else a process opens: replica
# connections (up to the in-flight cap per replica), the listening socket, logs, metrics files.
FD_SHARE_FOR_CLIENTS = 0.5

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


def client_limits_for_process(settings: GatewaySettings) -> ClientLimits:
    """This process's limits: its open-file limit raised first, the cap kept under it."""
    return ClientLimits(
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        body_min_rate=settings.body_min_rate,
        max_connections=connection_cap(settings.max_connections, raise_fd_limit()),
        max_body_bytes=settings.max_body_bytes,
        max_head_bytes=settings.max_head_bytes,
        send_timeout_s=settings.send_timeout_s,
    )


def raise_fd_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit; return the new soft one.

    The soft limit is often 1,024 while the hard one is far higher: each client connection and
    each replica connection is a file descriptor, and running out of them stops both."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:  # a container may forbid it: keep the soft one
            log.warning("could not raise the open-file limit from %s to %s: %s", soft, hard, exc)
    return soft


def connection_cap(configured: int, fd_limit: int) -> int:
    """The connection cap in effect: the configured one, lowered to a share of the open-file
    limit when it would not leave room for replica connections."""
    if fd_limit == resource.RLIM_INFINITY:
        return configured
    room = max(1, int(fd_limit * FD_SHARE_FOR_CLIENTS))
    if configured > room:
        log.warning(
            "GATEWAY_MAX_CONNECTIONS=%d is over half the open-file limit (%d): using %d",
            configured,
            fd_limit,
            room,
        )
        return room
    return configured


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
