"""The gateway's HTTP/1.1 server protocol: the shared one (httpserver/), with plain prediction
requests short-cut to ``Proxy.forward``.

Serve with ``uvicorn.run(..., http="gateway.server:GatewayProtocol")`` (``gateway serve`` does).
A POST to /predict, /predict/batch or the model's V2 infer paths (/v2/models/{model}/infer and
its /versions/{version}/ form, for the versions in routing.yaml) with a Content-Length and
nothing unusual goes straight to the proxy (the V2 ones through its door, gateway/v2_door.py)
and its answer is written as one buffer; everything else goes to the FastAPI app (which forwards
such requests the same way, and answers an infer path of an unknown model with a 404). The path
table is the routing snapshot's, so it follows the model's name and versions as routing.yaml
changes.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Mapping
from typing import Any

from gateway.app import GatewayApp
from gateway.metrics import ClientTally
from httpserver import Request, ServerProtocol, Service
from httpserver.limits import ClientLimits
from httpserver.service import Reply

NOT_STARTED: dict[bytes, str] = {}  # before the lifespan opened the proxy: nothing is short-cut
INTERNAL_ERROR = (
    b'{"error":"internal_error","detail":"the gateway failed on this request; see its log"}'
)


class ProxyService:
    """The gateway app's proxy as the short-cut's service (httpserver/service.py)."""

    name = "gateway"
    log = logging.getLogger("gateway.server")
    internal_error = INTERNAL_ERROR

    def __init__(self, app: GatewayApp) -> None:
        self.app = app
        self.client_limits: ClientLimits = app.client_limits
        self.client_tally: ClientTally | None = app.client_tally

    @property
    def short_cut_paths(self) -> Mapping[bytes, str]:
        proxy = self.app.proxy
        return NOT_STARTED if proxy is None else proxy.state.snapshot.paths

    def body_limit(self) -> int | None:
        proxy = self.app.proxy  # None until the lifespan opened the upstream client
        return None if proxy is None else proxy.max_body_bytes

    def answer(self, request: Request, body: bytes) -> Coroutine[Any, Any, Reply]:
        proxy = self.app.proxy
        if proxy is None:
            raise RuntimeError("the gateway stopped serving")
        path = request.path
        if path[1] == "v":  # /v2/models/...: the short-cut's table holds no other "/v" path
            return proxy.v2.forward(path, request.headers, body, request.start)
        return proxy.forward(path, request.headers, body, request.start)


class GatewayProtocol(ServerProtocol):
    """Serve with ``uvicorn.run(..., http="gateway.server:GatewayProtocol")``."""

    @classmethod
    def service_of(cls, app: Any) -> Service | None:
        # uvicorn may wrap the app in middleware; the gateway app is at the bottom.
        while app is not None and not isinstance(app, GatewayApp):
            app = getattr(app, "app", None)
        return None if app is None else ProxyService(app)


__all__ = ["GatewayProtocol", "ProxyService"]
