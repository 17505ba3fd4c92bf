"""What a process plugs into the server protocol: the requests its short-cut takes, and how it
answers them. The gateway's forwards to a replica (gateway/server.py); the model server's
scores the customer itself (model_server/server.py). Everything else goes to the ASGI app.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Mapping
from typing import Any, Protocol

from httpserver.limits import ClientLimits
from httpserver.tally import ConnectionTally


class Reply(Protocol):
    """A whole answer: its status, its header lines (content-length among them), its body."""

    @property
    def status(self) -> int: ...
    @property
    def head(self) -> bytes: ...  # b"name: value\r\n" each
    @property
    def body(self) -> bytes: ...


class Request(Protocol):
    """A short-cut request as the service sees it (httpserver/short_cut.py's Exchange)."""

    path: str
    headers: list[tuple[bytes, bytes]]  # lower-case names, in the order received
    start: float  # time.perf_counter() when its head was whole


class Service(Protocol):
    """Read-only attributes (properties here, so a service may narrow their types)."""

    @property
    def name(self) -> str: ...  # what the process calls itself in an answer: "gateway"
    @property
    def client_limits(self) -> ClientLimits: ...
    @property
    def client_tally(self) -> ConnectionTally | None: ...  # None: the protocol keeps its own
    @property
    def short_cut_paths(self) -> Mapping[bytes, str]: ...  # request target -> path it takes
    @property
    def log(self) -> logging.Logger: ...  # where an unexpected error on the short-cut goes
    @property
    def internal_error(self) -> bytes: ...  # the JSON body of the 500 such an error gets

    def body_limit(self) -> int | None:
        """The largest body the short-cut takes now; None: it takes nothing now (not ready)."""
        ...

    def answer(
        self, request: Request, body: bytes
    ) -> Reply | Coroutine[Any, Any, Reply | None] | None:
        """The answer, at once or from a coroutine (run as a task of the connection's); None:
        the ASGI app answers this request."""
        ...
