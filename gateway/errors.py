"""The gateway's one error hierarchy: each error knows its HTTP status and JSON body."""

from __future__ import annotations

import json


class GatewayError(Exception):
    status = 500
    error = "internal_error"

    def __init__(self, detail: str, *, version: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.version = version

    def body(self) -> bytes:
        payload: dict[str, str] = {"error": self.error, "detail": self.detail}
        if self.version is not None:
            payload["version"] = self.version
        return json.dumps(payload).encode()

    def v2_body(self) -> bytes:
        """The Open Inference Protocol's error object: its clients read ``error`` as the
        message (tritonclient raises it as the exception's text)."""
        return json.dumps({"error": self.detail}).encode()


class BadPin(GatewayError):
    status = 400
    error = "bad_pin"


class BadRequest(GatewayError):
    """A header (or the target) the gateway would forward holds CR, LF or NUL: nothing is sent.

    The server's parser already refuses these; the client checks again where it writes."""

    status = 400
    error = "bad_request"


class InvalidRequest(GatewayError):
    """A /predict body a ``protocol: v2`` version cannot be asked: the 422 a model server
    would have answered (FastAPI's shape, the field named)."""

    status = 422
    error = "invalid_request"

    def __init__(self, detail: str, payload: bytes, *, version: str | None = None) -> None:
        super().__init__(detail, version=version)
        self.payload = payload

    def body(self) -> bytes:
        return self.payload


class UnknownModel(GatewayError):
    """A V2 path naming a model, or a version of it, the gateway does not serve."""

    status = 404
    error = "unknown_model"


class BodyTooLarge(GatewayError):
    status = 413
    error = "body_too_large"


class BadUpstream(GatewayError):
    status = 502
    error = "bad_upstream"


class NoHealthyReplica(GatewayError):
    status = 503
    error = "no_healthy_replica"


class UpstreamTimeout(GatewayError):
    status = 504
    error = "upstream_timeout"


class UpstreamFailure(Exception):
    """One try against one replica failed; ``cause`` is a metric label."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(detail)
        # connect_error (refused, unreachable: 503), timeout (connect or read: 504),
        # status_5xx, protocol_error (502)
        self.cause = cause
        self.detail = detail
