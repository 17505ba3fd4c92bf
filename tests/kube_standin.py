"""A stand-in for the Kubernetes API server, for exactly the calls the routing store makes.

No API server can run on the test machines, so the code that talks to one is tested against this
small HTTP server, which speaks the API's JSON for one ConfigMap and nothing else:

- ``GET    /api/v1/namespaces/NS/configmaps/NAME``: the object (404 ``Status`` if absent);
- ``PUT    .../configmaps/NAME``: replace; ``PATCH .../configmaps/NAME`` with
  ``application/merge-patch+json``: merge ``data`` (a null value deletes a key). Either one,
  when its ``metadata.resourceVersion`` is set and is not the current one, is refused with
  ``409 Conflict`` (as the API server's optimistic concurrency does); each write bumps the
  version and records a MODIFIED event;
- ``GET    /api/v1/namespaces/NS/configmaps?fieldSelector=metadata.name=NAME``: a
  ``ConfigMapList`` whose ``metadata.resourceVersion`` is the server's current version;
- the same with ``watch=1&resourceVersion=RV``: the events after RV as JSON lines over a chunked
  response, then each new one as it happens, a ``BOOKMARK`` every ``bookmark_every_s`` (when
  ``allowWatchBookmarks=true``), ending after ``timeoutSeconds``. A version older than the
  oldest event kept (see ``compact``) is ``410 Gone``: as an ERROR event in a 200 stream, as the
  API server does, or as an HTTP 410 when ``gone_as_http`` is set.

Tests drive it: ``put_text`` writes the document as an operator's ``kubectl apply`` would,
``break_watches`` drops every open watch connection mid-stream, ``compact`` forgets history (so
the next watch from an old version is 410), and the counters say how many lists, watches and
conflicts it served. Authentication is not checked; the bearer tokens seen are recorded.
Everything else about the API (other kinds, label selectors, server-side apply, RBAC) is absent.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["KubeStandIn"]

KEY = "routing.yaml"


class KubeStandIn:
    def __init__(self, namespace: str, name: str, text: str | None = None) -> None:
        self.namespace = namespace
        self.name = name
        self.bookmark_every_s = 0.2
        self.gone_as_http = False
        self.counts: Counter[str] = Counter()
        self.tokens: set[str] = set()
        self._cond = threading.Condition()
        self._version = 100
        self._object: dict[str, Any] | None = None
        self._events: list[tuple[int, str, dict[str, Any]]] = []  # (version, type, object)
        self._oldest = self._version  # a watch from an older version is 410 Gone
        self._generation = 0  # bumped by break_watches: open watches drop their connection
        if text is not None:
            self.put_text(text)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # --- the test's side --------------------------------------------------------------------

    @property
    def url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    @property
    def location(self) -> str:
        return f"configmap:{self.namespace}/{self.name}"

    def start(self) -> KubeStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.break_watches()
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> KubeStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def text(self) -> str:
        with self._cond:
            assert self._object is not None
            return str(self._object["data"][KEY])

    @property
    def resource_version(self) -> str:
        with self._cond:
            return str(self._version)

    def put_text(self, text: str) -> str:
        """Write the document regardless of its version (an operator's apply); its version."""
        with self._cond:
            return self._write({KEY: text}, replace=True)

    def delete(self) -> None:
        with self._cond:
            assert self._object is not None
            self._version += 1
            gone = self._with_version(self._object)
            self._object = None
            self._record("DELETED", gone)

    def break_watches(self) -> None:
        """Drop every open watch's connection, as a restarting API server or a proxy would."""
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def compact(self) -> None:
        """Forget the event history: a watch from any version before now gets 410 Gone."""
        with self._cond:
            self._events.clear()
            self._version += 1  # bookmarks carry it; an older version is now too old
            self._oldest = self._version
            self._cond.notify_all()

    # --- the store ----------------------------------------------------------------------------

    def _write(self, data: dict[str, Any], *, replace: bool) -> str:
        self._version += 1
        created = self._object is None
        old = self._object
        base: dict[str, Any] = {} if replace or old is None else dict(old["data"])
        for key, value in data.items():
            if value is None:
                base.pop(key, None)
            else:
                base[key] = value
        self._object = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "data": base,
        }
        self._record("ADDED" if created else "MODIFIED", self._with_version(self._object))
        return str(self._version)

    def _with_version(self, obj: dict[str, Any]) -> dict[str, Any]:
        metadata = {**obj["metadata"], "resourceVersion": str(self._version)}
        obj["metadata"] = metadata
        copy: dict[str, Any] = json.loads(json.dumps(obj))  # later writes never change a sent one
        return copy

    def _record(self, kind: str, obj: dict[str, Any]) -> None:
        self._events.append((self._version, kind, obj))
        if len(self._events) > 1000:  # bounded, like etcd's window
            del self._events[:-1000]
            self._oldest = self._events[0][0] - 1
        self._cond.notify_all()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                standin._serve(self, "GET")

            def do_PUT(self) -> None:
                standin._serve(self, "PUT")

            def do_PATCH(self) -> None:
                standin._serve(self, "PATCH")

        return Handler

    def _serve(self, req: BaseHTTPRequestHandler, method: str) -> None:
        auth = req.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            self.tokens.add(auth[len("Bearer ") :])
        parts = urlsplit(req.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        collection = f"/api/v1/namespaces/{self.namespace}/configmaps"
        if parts.path == f"{collection}/{self.name}":
            if method == "GET":
                self._get(req)
            else:
                self._update(req, method)
        elif parts.path == collection and method == "GET":
            if query.get("fieldSelector") != f"metadata.name={self.name}":
                self._status(req, 400, "BadRequest", "the stand-in serves one ConfigMap by name")
            elif query.get("watch") in ("1", "true"):
                self._watch(req, query)
            else:
                self._list(req)
        else:
            self._status(req, 404, "NotFound", f"the stand-in does not serve {method} {parts.path}")

    def _get(self, req: BaseHTTPRequestHandler) -> None:
        self.counts["get"] += 1
        with self._cond:
            obj = json.loads(json.dumps(self._object)) if self._object else None
        if obj is None:
            self._status(req, 404, "NotFound", f'configmaps "{self.name}" not found')
        else:
            self._json(req, 200, obj)

    def _update(self, req: BaseHTTPRequestHandler, method: str) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        try:
            body = json.loads(req.rfile.read(length))
        except ValueError:
            self._status(req, 400, "BadRequest", "body is not JSON")
            return
        if method == "PATCH" and req.headers.get("Content-Type") != "application/merge-patch+json":
            self._status(req, 415, "UnsupportedMediaType", "the stand-in takes merge patches")
            return
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        with self._cond:
            if self._object is None:
                missing = f'configmaps "{self.name}" not found'
                conflict = None
            else:
                missing = None
                current = self._object["metadata"]["resourceVersion"]
                conflict = wanted is not None and str(wanted) != current
            if not missing and not conflict:
                self._write(body.get("data") or {}, replace=method == "PUT")
                obj = json.loads(json.dumps(self._object))
        if missing:
            self._status(req, 404, "NotFound", missing)
        elif conflict:
            self.counts["conflict"] += 1
            message = (
                f'Operation cannot be fulfilled on configmaps "{self.name}": the object has '
                "been modified; please apply your changes to the latest version and try again"
            )
            self._status(req, 409, "Conflict", message)
        else:
            self.counts[method.lower()] += 1
            self._json(req, 200, obj)

    def _list(self, req: BaseHTTPRequestHandler) -> None:
        self.counts["list"] += 1
        with self._cond:
            items = [json.loads(json.dumps(self._object))] if self._object else []
            version = str(self._version)
        body = {"kind": "ConfigMapList", "apiVersion": "v1",
                "metadata": {"resourceVersion": version}, "items": items}  # fmt: skip
        self._json(req, 200, body)

    def _watch(self, req: BaseHTTPRequestHandler, query: dict[str, str]) -> None:
        self.counts["watch"] += 1
        since = int(query.get("resourceVersion") or 0)
        bookmarks = query.get("allowWatchBookmarks") == "true"
        ends_at = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
        with self._cond:
            too_old = since < self._oldest
            generation = self._generation
        if too_old:
            self.counts["gone"] += 1
            if self.gone_as_http:
                self._status(req, 410, "Expired", f"too old resource version: {since}")
                return
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Transfer-Encoding", "chunked")
        req.end_headers()
        if too_old:
            message = f"too old resource version: {since}"
            gone = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410,
                    "reason": "Expired", "message": message}  # fmt: skip
            self._chunk(req, {"type": "ERROR", "object": gone})
            self._chunk_end(req)
            return
        sent = since
        next_bookmark = time.monotonic() + self.bookmark_every_s
        try:
            while True:
                with self._cond:
                    pending = [e for e in self._events if e[0] > sent]
                    if not pending and self._generation == generation:
                        wait = min(next_bookmark, ends_at) - time.monotonic()
                        self._cond.wait(max(0.0, wait))
                        pending = [e for e in self._events if e[0] > sent]
                    broken = self._generation != generation
                    version = self._version
                if broken:
                    # Cut mid-stream: no terminating chunk, the client sees the connection go.
                    req.connection.shutdown(socket.SHUT_RDWR)
                    req.close_connection = True
                    return
                for event_version, kind, obj in pending:
                    self._chunk(req, {"type": kind, "object": obj})
                    sent = event_version
                now = time.monotonic()
                if now >= ends_at:
                    self._chunk_end(req)
                    return
                if bookmarks and now >= next_bookmark:
                    self.counts["bookmark"] += 1
                    mark = {"kind": "ConfigMap", "apiVersion": "v1",
                            "metadata": {"resourceVersion": str(version)}}  # fmt: skip
                    self._chunk(req, {"type": "BOOKMARK", "object": mark})
                    sent = max(sent, version)
                    next_bookmark = now + self.bookmark_every_s
        except OSError:
            req.close_connection = True  # the client went away

    @staticmethod
    def _chunk(req: BaseHTTPRequestHandler, event: dict[str, Any]) -> None:
        line = json.dumps(event).encode() + b"\n"
        req.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
        req.wfile.flush()

    @staticmethod
    def _chunk_end(req: BaseHTTPRequestHandler) -> None:
        req.wfile.write(b"0\r\n\r\n")
        req.wfile.flush()

    @staticmethod
    def _json(req: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)

    def _status(self, req: BaseHTTPRequestHandler, code: int, reason: str, message: str) -> None:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code}  # fmt: skip
        self._json(req, code, body)
