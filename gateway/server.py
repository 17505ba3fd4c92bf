"""The gateway's HTTP/1.1 server protocol: the shared one (httpserver/), with plain prediction
requests short-cut to ``Proxy.forward``.

Serve with ``uvicorn.run(..., http="gateway.server:GatewayProtocol")`` (``gateway serve`` does).
A POST to /predict or /predict/batch with a Content-Length and nothing unusual goes straight to
the proxy and its answer is written as one buffer; everything else goes to the FastAPI app
(which forwards such requests the same way).
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

from gateway.app import GatewayApp
from gateway.metrics import ClientTally
from httpserver import Request, ServerProtocol, Service
from httpserver.limits import ClientLimits
from httpserver.service import Reply

SHORT_CUT = {b"/predict": "/predict", b"/predict/batch": "/predict/batch"}
INTERNAL_ERROR = (
    b'{"error":"internal_error","detail":"the gateway failed on this request; see its log"}'
)


class ProxyService:
    """The gateway app's proxy as the short-cut's service (httpserver/service.py)."""

    name = "gateway"
    short_cut_paths = SHORT_CUT
    log = logging.getLogger("gateway.server")
    internal_error = INTERNAL_ERROR

    def __init__(self, app: GatewayApp) -> None:
        self.app = app
        self.client_limits: ClientLimits = app.client_limits
        self.client_tally: ClientTally | None = app.client_tally

    def body_limit(self) -> int | None:
        proxy = self.app.proxy  # None until the lifespan opened the upstream client
        return None if proxy is None else proxy.max_body_bytes

    def answer(self, request: Request, body: bytes) -> Coroutine[Any, Any, Reply]:
        proxy = self.app.proxy
        if proxy is None:
            raise RuntimeError("the gateway stopped serving")
        return proxy.forward(request.path, request.headers, body, request.start)


class GatewayProtocol(ServerProtocol):
    """Serve with ``uvicorn.run(..., http="gateway.server:GatewayProtocol")``."""

    @classmethod
    def service_of(cls, app: Any) -> Service | None:
        # uvicorn may wrap the app in middleware; the gateway app is at the bottom.
        while app is not None and not isinstance(app, GatewayApp):
            app = getattr(app, "app", None)
        return None if app is None else ProxyService(app)


__all__ = ["GatewayProtocol", "ProxyService"]
