"""The HTTP/1.1 server protocol the gateway and the model server share: uvicorn's, with each
process's plain hot-path requests short-cut, and every client limit kept on both paths.

uvicorn keeps everything it does well: listening, workers, keep-alive, pipelining order, graceful
shutdown, and the ASGI app (FastAPI endpoints, lifespan). What changes is one kind of request: a
POST to one of the process's short-cut paths with a Content-Length and nothing unusual, which
goes straight to the process's service (httpserver/service.py) with no ASGI machinery. Every
connection, on either path, also keeps the client limits of httpserver/limits.py. One concept a
module, in the manner of uvicorn's protocols/http:

protocol.py        ServerProtocol: uvicorn's callbacks, each handing its event to the pieces below
service.py         what a process plugs in: the paths its short-cut takes and how it answers them
short_cut.py       the short-cut, and when a request takes it
deadlines.py       keep-alive, head and body deadlines on one timer per connection; the 408s
flow_control.py    back-pressure: a client that leaves its answers unread is read no further,
                   and dropped after the send timeout
head_cap.py        the cap on a request head's size (431)
connection_cap.py  the cap on the process's open connections (503 before anything is read)
connection.py      what they share: the service, its limits and tally, the connection's phase
limits.py          the limits' numbers and the answers over them
tally.py           what the limits did, as plain counts

Each process serves with its subclass: ``gateway.server:GatewayProtocol`` (``gateway serve``)
and ``model_server.server:ReplicaProtocol`` (the local stack, the image, the bench). The protocol
uses internals of uvicorn's (the request cycle's attributes, the pipeline queue, the keep-alive
hooks), so uvicorn is pinned to an exact version in pyproject.toml;
tests/httpserver/test_server_internals.py names any of those internals an upgrade removed, and
tests/integration/test_server_protocol.py checks both paths on the wire, against a gateway and
a replica.
"""

from httpserver.protocol import ServerProtocol
from httpserver.service import Reply, Request, Service
from httpserver.short_cut import Exchange

__all__ = ["Exchange", "Reply", "Request", "ServerProtocol", "Service"]
