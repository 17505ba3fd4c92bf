"""Which paths answer on which listener when the gateway has an admin port.

Clients need predictions, the probes and, with a token, ``POST /outcomes``. The rest (``/routing``
with the replica topology, ``/stats``, ``/shadow``, ``/quality``, ``/metrics``, the status page,
the API docs) tells whoever reads it how the service is built and every rollout decision, so with
``GATEWAY_ADMIN_PORT`` set it answers only on that port, which the cluster's NetworkPolicy opens to
the metrics scraper and the operators alone (Envoy keeps its admin interface on a listener of its
own for the same reason). ``streamflow serve`` opens the second listener (cli/serve.py); both
ports are served by the same app in every worker, which tells them apart by the local port the
connection arrived on (the ASGI scope's ``server``).

The client port answers an allow-list, so an endpoint added later stays the operators' until it is
named here: a new endpoint never reaches clients by default. A refused path answers exactly as an
unknown one (404 ``not_found``), so a client cannot tell that it exists. The admin port answers
every path: probes work on either port, and an operator may try a prediction there.

Predictions never get this far on the client port's fast path (the server protocol's short-cut
forwards them before any ASGI scope exists), so the check costs them nothing.
"""

from __future__ import annotations

from starlette.types import Scope

__all__ = ["CLIENT_PATHS", "NOT_FOUND", "is_client_path", "refused"]

# The model API's doors, the probes, and the outcomes writer (off unless a token is set).
CLIENT_PATHS = frozenset({"/predict", "/predict/batch", "/health", "/ready", "/outcomes"})
# The Open Inference Protocol's door (``/v2``, ``/v2/health/...``, ``/v2/models/...``).
CLIENT_PREFIX = "/v2/"
CLIENT_ROOT = "/v2"

# What the app's error handler answers for a path no route has (gateway/endpoints/errors.py).
NOT_FOUND = {"error": "not_found", "detail": "Not Found"}


def is_client_path(path: str) -> bool:
    return path in CLIENT_PATHS or path == CLIENT_ROOT or path.startswith(CLIENT_PREFIX)


def refused(scope: Scope, admin_port: int) -> bool:
    """True for a request that must answer 404: an operators' path off the admin port.

    A connection whose local port is unknown (a Unix socket) counts as the client port's: when in
    doubt, the operators' endpoints stay closed."""
    if not admin_port or is_client_path(scope["path"]):
        return False
    server = scope.get("server")
    return server is None or server[1] != admin_port
