"""HTTP header names of the gateway and model API contracts, lower-case as they go on the wire."""

from __future__ import annotations

__all__ = [
    "FALLBACK_FROM",
    "MODEL_VERSION",
    "REQUEST_ID",
    "RESPONSE_TIME_MS",
    "ROUTE_REASON",
    "ROUTE_REASONS",
    "ROUTING_REVISION",
    "SHADOW_OF",
]

MODEL_VERSION = "x-model-version"  # the version that served (gateway and replica)
RESPONSE_TIME_MS = "x-response-time-ms"
ROUTE_REASON = "x-route-reason"
ROUTING_REVISION = "x-routing-revision"
FALLBACK_FROM = "x-fallback-from"
REQUEST_ID = "x-request-id"
# On a mirrored request: the request id of the client request it copies. A replica counts
# what it scores for a shadow apart (model_churn_probability{shadow="true"}).
SHADOW_OF = "x-shadow-of"

# Every value X-Route-Reason takes (also the ``reason`` label of gateway_requests_total).
ROUTE_REASONS = ("weighted", "sticky", "pinned", "blue_green", "fallback")
