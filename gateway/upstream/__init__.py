"""Clients that carry a forwarded request to one replica, behind one interface (``base.py``).

- ``native.py``: ``NativeUpstream``, HTTP/1.1 keep-alive connections on asyncio protocols with
  answers parsed by httptools; the production client.
- ``httpx_client.py``: ``HttpxUpstream``, for tests (``httpx.MockTransport``).

``open_upstream`` is the one place a client is chosen; each client translates its own errors to
``UpstreamFailure``.
"""

from __future__ import annotations

from gateway.settings import GatewaySettings
from gateway.upstream.base import Upstream
from gateway.upstream.httpx_client import HttpxUpstream
from gateway.upstream.native import NativeUpstream

__all__ = ["HttpxUpstream", "NativeUpstream", "Upstream", "open_upstream"]


def open_upstream(settings: GatewaySettings) -> Upstream:
    """The forwarding client ``settings.transport`` names. Call inside the running event loop."""
    pool_size = settings.max_inflight_per_replica * 8
    if settings.transport == "httpx":
        return HttpxUpstream(settings.connect_timeout_s, settings.read_timeout_s, pool_size)
    return NativeUpstream(
        settings.connect_timeout_s,
        settings.read_timeout_s,
        pool_size,
        max_body_bytes=settings.max_response_bytes,
    )
