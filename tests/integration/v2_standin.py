"""A stand-in for a V2-only model server (an MLServer or a Triton), run as its own process.

    python -m tests.integration.v2_standin PORT NAME VERSION [INPUT=DATATYPE ...]

GET /v2/health/ready and /v2/models/NAME/ready answer 200; GET /v2/models/NAME answers the
churn model's V2 metadata (the model API's fields as inputs) with VERSION as its one version,
each INPUT=DATATYPE changing one input's datatype (a version whose inputs differ). GET /seen
answers ``{"posts": N}``, the POST requests that reached it; a POST answers 500 (it should get
none in the tests that use it).
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from protocols.v2.translate import MODEL_API_INPUTS


def main() -> None:
    port, name, version = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    retyped = dict(arg.split("=", 1) for arg in sys.argv[4:])
    metadata = json.dumps(
        {
            "name": name,
            "versions": [version],
            "platform": "standin",
            "inputs": [
                {"name": n, "datatype": retyped.get(n, t), "shape": [-1]}
                for n, t in MODEL_API_INPUTS
            ],
            "outputs": [{"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]}],
        }
    ).encode()
    posts = 0
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path in ("/v2/health/ready", f"/v2/models/{name}/ready"):
                self.answer(200, b"")
            elif self.path == f"/v2/models/{name}":
                self.answer(200, metadata)
            elif self.path == "/seen":
                self.answer(200, json.dumps({"posts": posts}).encode())
            else:
                self.answer(404, b'{"error": "not found"}')

        def do_POST(self) -> None:  # noqa: N802
            nonlocal posts
            with lock:
                posts += 1
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.answer(500, b'{"error": "this stand-in serves no inference"}')

        def answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
