"""The uvicorn internals httpserver/ relies on are still there, named as it uses them.

A uvicorn upgrade that renames or drops one fails here, in a fraction of a second and naming the
attribute, before the wire tests (tests/integration/test_server_protocol.py) show the effect.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.server import GatewayProtocol
from httpserver.short_cut import Exchange
from model_server.server import ReplicaProtocol
from tests.httpserver.fake_transport import FakeTransport

# Methods of HttpToolsProtocol that GatewayProtocol overrides or calls through super().
OVERRIDDEN = (
    "data_received",
    "pause_writing",
    "resume_writing",
    "on_message_begin",
    "on_headers_complete",
    "on_body",
    "on_message_complete",
    "_start_asgi_task",
    "_unset_keepalive_if_required",
    "on_response_complete",
    "connection_made",
    "connection_lost",
    "handle_websocket_upgrade",
    "send_400_response",
    "_should_upgrade",
    "_unsupported_upgrade_warning",
)
# Attributes GatewayProtocol reads or writes on itself, set by uvicorn's __init__ or on a request.
PROTOCOL_ATTRIBUTES = (
    "app",
    "loop",
    "parser",
    "access_log",
    "limit_concurrency",
    "timeout_keep_alive",
    "server_state",
    "connections",
    "tasks",
    "transport",
    "flow",
    "pipeline",
    "scope",
    "headers",
    "expect_100_continue",
    "cycle",
    "logger",
    # What a request the short-cut hands back to the app is given (httpserver/short_cut.py).
    "asgi_version",
    "server",
    "client",
    "scheme",
    "root_path",
    "app_state",
    "access_logger",
)
PER_REQUEST_ATTRIBUTES = ("url",)  # set by on_message_begin
SERVER_STATE_ATTRIBUTES = ("default_headers", "total_requests")
FLOW_METHODS = ("pause_reading", "resume_reading", "read_paused", "write_paused")
# What a client timeout reads or sets on an ASGI request cycle (httpserver/deadlines.py), and
# what a request handed back to the app sets on the cycle made for it (httpserver/short_cut.py).
CYCLE_ATTRIBUTES = (
    "response_started",
    "response_complete",
    "disconnected",
    "message_event",
    "body",
    "more_body",
)
# The request cycle's constructor, as the short-cut calls it for a request handed back.
CYCLE_PARAMETERS = [
    "self",
    "scope",
    "transport",
    "flow",
    "logger",
    "access_logger",
    "access_log",
    "default_headers",
    "message_event",
    "expect_100_continue",
    "keep_alive",
    "on_response",
]
PARSER_METHODS = ("get_method", "should_upgrade", "get_http_version", "should_keep_alive")


async def echo_path(scope: Any, receive: Any, send: Any) -> None:
    body = scope["path"].encode() + b" " + dict(scope["headers"]).get(b"x-probe", b"")
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def protocol(cls: type[HttpToolsProtocol]) -> HttpToolsProtocol:
    config = Config(app=echo_path, lifespan="off", access_log=False)
    return cls(config=config, server_state=ServerState(), app_state={})


def missing(obj: object, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if not hasattr(obj, name)]


def test_the_protocol_methods_httpserver_overrides_exist() -> None:
    gone = [name for name in OVERRIDDEN if not callable(getattr(HttpToolsProtocol, name, None))]
    assert not gone, f"uvicorn's HttpToolsProtocol no longer has {gone}: httpserver/ overrides them"
    params = list(inspect.signature(HttpToolsProtocol._start_asgi_task).parameters)
    assert params == ["self", "cycle", "app"], f"_start_asgi_task takes {params} now"
    params = list(inspect.signature(httptools_impl.RequestResponseCycle.__init__).parameters)
    assert params == CYCLE_PARAMETERS, f"RequestResponseCycle takes {params} now"


async def test_the_protocol_attributes_httpserver_uses_exist() -> None:
    proto = protocol(HttpToolsProtocol)
    gone = missing(proto, PROTOCOL_ATTRIBUTES)
    assert not gone, f"uvicorn's HttpToolsProtocol instances no longer have {gone}"
    gone = missing(proto.server_state, SERVER_STATE_ATTRIBUTES)
    assert not gone, f"uvicorn's ServerState no longer has {gone}"
    gone = missing(proto.parser, PARSER_METHODS)
    assert not gone, f"the request parser no longer has {gone}"
    assert hasattr(proto.pipeline, "appendleft") and hasattr(proto.pipeline, "pop")
    proto.connection_made(FakeTransport())
    gone = missing(proto.flow, FLOW_METHODS)
    assert not gone, f"uvicorn's FlowControl no longer has {gone}"
    proto.data_received(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    gone = missing(proto, PER_REQUEST_ATTRIBUTES)
    assert not gone, f"uvicorn's HttpToolsProtocol no longer sets {gone} per request"
    gone = missing(proto.cycle, CYCLE_ATTRIBUTES)
    assert not gone, f"uvicorn's request cycle no longer has {gone}"
    proto.connection_lost(None)


def test_status_line_covers_every_status_the_proxy_can_answer() -> None:
    # A replica's status of 500 and above is a failed try (the client gets the gateway's 502),
    # so the short-cut writes statuses below 600 only.
    lines = getattr(httptools_impl, "STATUS_LINE", None)
    assert isinstance(lines, dict), "uvicorn's httptools_impl.STATUS_LINE is gone"
    absent = [code for code in range(100, 600) if not lines.get(code, b"").startswith(b"HTTP/1.1 ")]
    assert not absent, f"STATUS_LINE lacks statuses {absent[:10]}"


def test_exchange_has_every_cycle_attribute_uvicorns_protocol_reads() -> None:
    # uvicorn treats a short-cut exchange as its request cycle (connection lost, shutdown,
    # pipelining): whatever it reads off a cycle, an Exchange must have.
    # GatewayProtocol's own versions of these handle an exchange before uvicorn's code runs.
    branched = {"on_body", "on_message_complete", "_start_asgi_task", "on_response_complete"}
    read: set[str] = set()
    for name, method in inspect.getmembers(HttpToolsProtocol, inspect.isfunction):
        if name not in branched:
            read |= set(re.findall(r"\bcycle\.(\w+)", inspect.getsource(method)))
    assert read, "found no cycle attribute reads in HttpToolsProtocol: update this test"
    absent = sorted(read - set(Exchange.__slots__))
    assert not absent, f"uvicorn now reads {absent} off a request cycle; Exchange lacks them"


@pytest.mark.parametrize("cls", [GatewayProtocol, ReplicaProtocol])
async def test_each_process_protocol_still_serves_through_uvicorns_asgi_path(
    cls: type[HttpToolsProtocol],
) -> None:
    proto = protocol(cls)
    transport = FakeTransport()
    proto.connection_made(transport)
    proto.data_received(b"GET /health HTTP/1.1\r\nHost: a\r\nX-Probe: seen\r\n\r\n")
    for _ in range(20):
        if transport.written:
            break
        await asyncio.sleep(0.01)
    head, _, body = bytes(transport.written).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert body == b"/health seen"  # the scope was built from what the parser gave
    proto.connection_lost(None)
