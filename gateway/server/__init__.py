"""The gateway's HTTP/1.1 server protocol: uvicorn's, with plain prediction requests short-cut.

uvicorn keeps everything it does well: listening, workers, keep-alive, pipelining order, graceful
shutdown, and the ASGI app (FastAPI status endpoints, lifespan). What changes is one kind of
request: a POST to /predict or /predict/batch with a Content-Length and nothing unusual, which
goes straight to ``Proxy.forward`` with no ASGI machinery. Every connection, on either path,
also keeps the client limits of gateway/client_limits.py. One concept a module, in the manner of
uvicorn's protocols/http:

protocol.py        GatewayProtocol: uvicorn's callbacks, each handing its event to the pieces below
short_cut.py       the short-cut for plain prediction requests, and when a request takes it
deadlines.py       keep-alive, head and body deadlines on one timer per connection; the 408s
flow_control.py    back-pressure: a client that leaves its answers unread is read no further,
                   and dropped after the send timeout
head_cap.py        the cap on a request head's size (431)
connection_cap.py  the cap on the process's open connections (503 before anything is read)
connection.py      what they share: the app, its limits and tally, the connection's phase

Serve with ``uvicorn.run(..., http="gateway.server:GatewayProtocol")`` (``gateway serve`` does).
The protocol uses internals of uvicorn's (the request cycle's attributes, the pipeline queue,
the keep-alive hooks), so uvicorn is pinned to an exact version in pyproject.toml;
tests/gateway/test_server_internals.py names any of those internals an upgrade removed, and
tests/integration/test_server_protocol.py checks both paths on the wire.
"""

from gateway.server.protocol import GatewayProtocol

__all__ = ["GatewayProtocol"]
