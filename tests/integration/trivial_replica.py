"""A tiny stand-in for a model replica, run as its own process (starts in well under a second).

    python -m tests.integration.trivial_replica PORT VERSION NAME [HOST]

HOST (default 127.0.0.1) may be any 127.0.0.x: Linux routes all of 127/8 to loopback, so
replicas on one port at several addresses stand for a headless Service's pods.

GET /health answers ``{"status": "healthy", "model_version": VERSION}``; GET /seen answers
``{"posts": N}``, the POST requests that have reached it so far. Any POST answers JSON
describing what arrived (path, body length and sha256, a few request headers), tagged with
``X-Model-Version``; a body that is not JSON gets a 422 of its own. ``X-Slow: SECONDS`` (at most
5) delays the answer; ``X-Status-Line: LINE`` answers with that raw status line instead of 200;
``X-Answer-Bytes: N`` answers a body of N bytes (at most 64 MiB + 1 KiB).
Every other answer also carries headers a gateway must not pass on as they are: its own Date
and Server (http.server adds them), hop-by-hop Connection/Keep-Alive, and an ``X-Request-Id`` of
its own.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_SLOW_S = 5.0
MAX_BODY = 10 * 1024 * 1024
MAX_ANSWER = 64 * 1024 * 1024 + 1024


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a uvicorn replica would
    # The head and the body are two writes: without this, Nagle's algorithm holds the body
    # until the gateway's delayed ACK (about 40 ms a request).
    disable_nagle_algorithm = True
    version: str = "v0"
    name: str = "replica"
    posts = 0
    posts_lock = threading.Lock()

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/health":
            self._send(200, {"status": "healthy", "model_version": self.version})
        elif self.path == "/seen":
            self._send(200, {"posts": Handler.posts})
        else:
            self._send(404, {"detail": "not found"})

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        with Handler.posts_lock:
            Handler.posts += 1
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, MAX_BODY))
        slow = self.headers.get("X-Slow")
        if slow:
            time.sleep(min(float(slow), MAX_SLOW_S))
        seen = {
            "path": self.path,
            "body_bytes": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "request_id": self.headers.get("X-Request-Id"),
            "content_length": self.headers.get("Content-Length"),
            "transfer_encoding": self.headers.get("Transfer-Encoding"),
            "expect": self.headers.get("Expect"),
        }
        answer_bytes = self.headers.get("X-Answer-Bytes")
        if answer_bytes:
            size = min(int(answer_bytes), MAX_ANSWER)
            head = f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {size}\r\n"
            self.wfile.write(f"{head}X-Model-Version: {self.version}\r\n\r\n".encode())
            block = b"z" * 65536
            try:
                for start in range(0, size, len(block)):
                    self.wfile.write(block[: size - start])
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the gateway stopped reading: expected here
            return
        status_line = self.headers.get("X-Status-Line")
        if status_line:  # a misbehaving replica: the status line exactly as asked
            data = json.dumps({"model_version": self.version, **seen}).encode()
            head = f"{status_line}\r\nContent-Type: application/json\r\n"
            head += f"Content-Length: {len(data)}\r\nX-Model-Version: {self.version}\r\n\r\n"
            self.wfile.write(head.encode("latin-1") + data)
            return
        try:
            json.loads(body)
        except ValueError:
            self._send(422, {"detail": "body is not JSON", **seen}, error="not-json")
            return
        self._send(200, {"model_version": self.version, "replica": self.name, **seen})

    def _send(self, status: int, payload: dict[str, object], error: str | None = None) -> None:
        data = json.dumps(payload, sort_keys=True).encode()
        self.send_response(status)  # adds Server and Date
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Model-Version", self.version)
        self.send_header("X-Replica-Name", self.name)
        self.send_header("X-Request-Id", "set-by-the-replica")
        if not self.close_connection:  # (http.server would take a "keep-alive" as an order)
            self.send_header("Connection", "keep-alive")
            self.send_header("Keep-Alive", "timeout=5")
        if error is not None:
            self.send_header("X-Replica-Error", error)
        self.end_headers()
        self.wfile.write(data)


def main(argv: list[str]) -> None:
    port, version, name = int(argv[0]), argv[1], argv[2]
    host = argv[3] if len(argv) > 3 else "127.0.0.1"
    Handler.version = version
    Handler.name = name
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
