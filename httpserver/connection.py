"""What every piece of the server protocol reads: the process's service (its short-cut), its
client limits and tally, what the connection is doing (its phase), and uvicorn's default
headers as bytes."""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from httpserver.limits import ClientLimits
from httpserver.service import Service
from httpserver.tally import ConnectionTally

# What a connection is doing: its deadline (deadlines.py) and whether a head is arriving
# (head_cap.py) follow from it. A request being answered has no deadline.
KEEP_ALIVE = 0  # between requests: the keep-alive timeout
ACCEPTED = 1  # new, nothing received yet: the head timeout, from the accept
READING_HEAD = 2  # a request's head is arriving
READING_BODY = 3  # its body is arriving
ANSWERING = 4  # the whole request is in; being answered

# id(server_state.default_headers) -> (that list, its bytes); shared by the process's connections.
_default_heads: dict[int, tuple[list[tuple[bytes, bytes]], bytes]] = {}


def head_lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    """Header pairs as header lines, b"name: value\\r\\n" each."""
    return b"".join(name + b": " + value + b"\r\n" for name, value in headers)


class ClientConnection(HttpToolsProtocol):
    """uvicorn's httptools protocol with the state the pieces share."""

    # Set by ServerProtocol.__init__ (protocol.py), with every piece's state.
    service: Service | None  # None: no short-cut, every request goes to the ASGI app
    limits: ClientLimits
    tally: ConnectionTally
    phase: int
    body_length: int | None  # declared by the request being read; None: chunked
    logs_access: bool  # uvicorn's access log is on and writes INFO lines: no short-cut

    def _default_head(self) -> bytes:
        """uvicorn's default headers (date, server) as bytes; it swaps the list every second."""
        headers = self.server_state.default_headers
        cached = _default_heads.get(id(headers))
        if cached is None or cached[0] is not headers:
            _default_heads.clear()
            cached = _default_heads[id(headers)] = (headers, head_lines(headers))
        return cached[1]
