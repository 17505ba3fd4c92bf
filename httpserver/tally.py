"""What the client limits did on a process's connections, as plain numbers: each connection,
refusal and timeout costs an addition, not a labelled counter's lock. A process reports them
with its own metric names (the gateway's ``ClientTally`` extends this one)."""

from __future__ import annotations

from httpserver.limits import PHASES


class ConnectionTally:
    def __init__(self) -> None:
        self.open = 0  # client connections open now
        self.refused = 0  # answered 503 and closed: over the connection cap
        self.heads_too_large = 0  # answered 431 and closed
        self.timeouts = dict.fromkeys(PHASES, 0)  # connections closed late, by phase
