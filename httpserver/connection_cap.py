"""The process's cap on open client connections: one over it is answered 503 and closed before
anything is read, so the clients already here and the replica connections keep their file
descriptors (the gateway's client limits size the cap under the open-file limit)."""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from httpserver.connection import ClientConnection
from httpserver.limits import error_answer


class ConnectionCap(ClientConnection):
    """Counts the process's open client connections (``ClientTally.open``) and refuses one
    over the cap."""

    counted: bool  # counted in the open connections (not a refused one)

    def _admit(self, transport: asyncio.Transport) -> bool:
        """Count the new connection in, or refuse it (False)."""
        tally = self.tally
        if tally.open >= self.limits.max_connections:
            # Refused before anything is read: the clients already here and the replica
            # connections keep their file descriptors.
            self.connections.discard(self)
            tally.refused += 1
            transport.write(self._refusal())
            transport.close()
            return False
        tally.open += 1
        self.counted = True
        return True

    def _count_out(self) -> None:
        if self.counted:
            self.counted = False
            self.tally.open -= 1

    def _refusal(self) -> bytes:
        name = self.service.name if self.service is not None else "server"
        detail = f"the {name} holds its limit of {self.limits.max_connections} connections"
        return error_answer(STATUS_LINE[503], self._default_head(), "too_many_connections", detail)
