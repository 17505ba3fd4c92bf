"""The one interface every forwarding client implements."""

from __future__ import annotations

from typing import Protocol

from gateway.wire import Headers, Message


class Upstream(Protocol):
    async def post(self, url: str, body: bytes, headers: Headers, timeout: float) -> Message:
        """POST and read the whole answer within ``timeout`` seconds, or raise UpstreamFailure
        (a failure of this try, retried on another replica) or a GatewayError (the request
        itself cannot be sent, e.g. BadHeader)."""
        ...

    async def aclose(self) -> None: ...
