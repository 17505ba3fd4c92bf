"""rollout/analysis.py over HTTP, for Argo Rollouts' ``web`` metric provider and Flagger's
webhooks (``streamflow rollout analysis``). A small threaded server of the standard library:
a handful of questions a minute from one or two controllers needs no framework.

Argo Rollouts (the ``web`` provider GETs a URL, reads JSON, evaluates ``successCondition`` and
``failureCondition`` on ``result``; a non-2xx answer is a measurement error):

    GET /verdict?candidate=v2.4.0[&stable=v2.3.1]   200, the verdict as JSON:
        {"status": "pass"|"fail"|"pending", "verdict": "PASS"|..., "checks": [...], ...}
    successCondition: result.status == 'pass'   failureCondition: result.status == 'fail'

Flagger (each webhook POSTs {"name", "namespace", "phase", "metadata": {...}}; 200-202 lets
the canary go on, any other status or a timeout counts a failed check; metadata values are
strings: ``candidate`` and optionally ``stable`` name the versions):

    POST /flagger/pre-rollout         the candidate's window begins now: 200
    POST /flagger/rollout             200 unless the verdict is fail (412): evidence gathers
                                      while Flagger steps; a proven regression stops it
    POST /flagger/confirm-promotion   200 only on pass; pending is 425 (Flagger asks again),
                                      fail is 412

Also ``POST /reset?candidate=`` (a new window), ``GET /health``. Errors are JSON
``{"error": ...}`` naming the field: 400 a missing or bad field, 404 a version routing.yaml
does not have, 413 a body over 64 KiB, 503 the metrics or routing.yaml unreadable.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from rollout.analysis import FAIL, PASS, Analysis, UnknownVersion
from rollout.sources.base import SourceError
from routing_config import ConfigError

__all__ = ["MAX_BODY", "AnalysisServer", "flagger_status"]

log = logging.getLogger("rollout.analysis")

MAX_BODY = 64 * 1024
TOO_EARLY = 425  # the promotion gate while the verdict is pending: not yet, ask again
FAILED = 412  # the verdict is fail: the precondition of going on does not hold


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def flagger_status(hook: str, status: str) -> int:
    """The HTTP status a Flagger hook gets for a verdict's status (module docstring)."""
    if status == FAIL:
        return FAILED
    if hook == "confirm-promotion" and status != PASS:
        return TOO_EARLY
    return 200


class AnalysisServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], analysis: Analysis) -> None:
        self.analysis = analysis
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: AnalysisServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(self._get)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(self._post)

    # --- routes ------------------------------------------------------------------------

    def _get(self) -> tuple[int, dict[str, Any]]:
        path, query = self._target()
        if path == "/health":
            return 200, {"status": "ok"}
        if path == "/verdict":
            return 200, self.server.analysis.verdict(
                _required(query, "candidate"), query.get("stable")
            )
        raise BadRequest(404, f"no such path: {path}")

    def _post(self) -> tuple[int, dict[str, Any]]:
        path, query = self._target()
        body = self._body()
        analysis = self.server.analysis
        if path == "/reset":
            return 200, analysis.begin(_required(query, "candidate"))
        hook = path.removeprefix("/flagger/")
        if path.startswith("/flagger/") and hook in ("pre-rollout", "rollout", "confirm-promotion"):
            metadata = body.get("metadata")
            if not isinstance(metadata, dict):
                raise BadRequest(400, "metadata: required, an object with candidate (and stable)")
            candidate = _required(metadata, "candidate", "metadata.")
            if hook == "pre-rollout":
                return 200, analysis.begin(candidate)
            stable = metadata.get("stable")
            if stable is not None and not isinstance(stable, str):
                raise BadRequest(400, "metadata.stable: must be a string")
            verdict = analysis.verdict(candidate, stable)
            return flagger_status(hook, verdict["status"]), verdict
        raise BadRequest(404, f"no such path: {path}")

    # --- plumbing ------------------------------------------------------------------------

    def _answer(self, route: Callable[[], tuple[int, dict[str, Any]]]) -> None:
        try:
            status, payload = route()
        except BadRequest as exc:
            status, payload = exc.status, {"error": str(exc)}
        except UnknownVersion as exc:
            status, payload = 404, {"error": str(exc)}
        except SourceError as exc:
            status, payload = 503, {"error": f"metrics unavailable: {exc}"}
        except ConfigError as exc:
            status, payload = 503, {"error": f"routing.yaml is invalid: {'; '.join(exc.messages)}"}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _target(self) -> tuple[str, dict[str, str]]:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        return parts.path.rstrip("/") or "/", query

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise BadRequest(400, "Content-Length: not a number") from None
        if length > MAX_BODY:
            self.close_connection = True  # the body is not read: the connection cannot go on
            raise BadRequest(413, f"body: over {MAX_BODY} bytes")
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise BadRequest(400, "body: not JSON") from None
        if not isinstance(body, dict):
            raise BadRequest(400, "body: must be a JSON object")
        return body


def _required(fields: dict[str, Any], name: str, prefix: str = "") -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value:
        raise BadRequest(400, f"{prefix}{name}: required, a version name")
    return value
