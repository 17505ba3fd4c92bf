"""A stand-in model replica for rollout tests: answers predictions the way it is told to, and
exports model_churn_probability on the model server's buckets (started in well under a second).

    python -m tests.integration.rollout_replica PORT VERSION [--fail SHARE] [--delay-ms MS]
        [--shift] [--seeded]

``--fail 0.2`` answers 500 to a random fifth of predictions; ``--delay-ms 50`` answers 50 ms
later; probabilities are Beta(2, 5) draws, Beta(5, 2) with ``--shift`` (drifted predictions).
With ``--seeded`` the draw is seeded by the request body, so two replicas give the same customer
the same answer (as two equal models would), which a shadow comparison can tell.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from model_server.metrics import PROBABILITY_BUCKETS


class Replica:
    def __init__(
        self,
        version: str,
        fail: float,
        delay_s: float,
        shift: bool,
        seed: int,
        seeded: bool,
    ) -> None:
        self.seeded = seeded
        self.version = version
        self.fail = fail
        self.delay_s = delay_s
        self.shape = (5.0, 2.0) if shift else (2.0, 5.0)
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.registry = CollectorRegistry()
        self.probability = Histogram(
            "model_churn_probability",
            "Churn probabilities predicted.",
            ["version", "shadow"],
            buckets=PROBABILITY_BUCKETS,
            registry=self.registry,
        )

    def predict(self, body: bytes) -> tuple[int, dict[str, object]]:
        with self.lock:
            failed = self.random.random() < self.fail
            draw = random.Random(hashlib.sha256(body).digest()) if self.seeded else self.random
            probability = draw.betavariate(*self.shape)
        if failed:
            return 500, {"detail": "injected failure"}
        self.probability.labels(self.version, "false").observe(probability)
        tier = "low" if probability < 0.3 else "medium" if probability < 0.6 else "high"
        answer = {"churn_probability": probability, "risk_tier": tier, "top_reasons": []}
        return 200, {**answer, "model_version": self.version}


def handler(replica: Replica) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/health":
                self._send(200, {"status": "healthy", "model_version": replica.version})
            elif self.path == "/metrics":
                self._send_bytes(200, generate_latest(replica.registry), "text/plain")
            else:
                self._send(404, {"detail": "not found"})

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if replica.delay_s:
                time.sleep(replica.delay_s)
            self._send(*replica.predict(body))

        def _send(self, status: int, payload: dict[str, object]) -> None:
            self._send_bytes(status, json.dumps(payload).encode(), "application/json")

        def _send_bytes(self, status: int, data: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Model-Version", replica.version)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("version")
    parser.add_argument("--fail", type=float, default=0.0)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--shift", action="store_true")
    parser.add_argument("--seeded", action="store_true")
    args = parser.parse_args()
    replica = Replica(
        args.version,
        args.fail,
        args.delay_ms / 1000,
        args.shift,
        args.port,
        args.seeded,
    )
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(replica))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
